/*
 * citybrain — staff event pages: map of open events, live inbox updates, GPS for field reports.
 *
 * All visible text comes from data-label-* attributes translated by the server.
 *   #event-map + <script id="event-points">  ECharts map: township outlines from
 *                                            data-divisions-url, points coloured by urgency
 *   #live[data-live-url]                     EventSource; on "inbox" messages a toast is shown
 *                                            and [data-live-refresh] gets an htmx "live-refresh"
 *   #gps-button                              fills #lon/#lat (WGS-84) from the device position
 */
(function () {
  'use strict';

  var URGENCY_COLORS = { normal: '#2f74d9', urgent: '#e08a00', critical: '#c62828' };

  function drawMap() {
    var el = document.getElementById('event-map');
    var data = document.getElementById('event-points');
    if (!el || !data || typeof echarts === 'undefined') {
      return;
    }
    var points = JSON.parse(data.textContent || '[]');
    var chart = echarts.init(el);
    window.citybrainEventMap = { chart: chart };
    fetch(el.getAttribute('data-divisions-url'), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (resp) {
        if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
        return resp.json();
      })
      .then(function (geojson) {
        echarts.registerMap('district-events', geojson);
        var series = ['normal', 'urgent', 'critical'].map(function (level) {
          return {
            name: el.getAttribute('data-label-' + level) || level,
            type: 'scatter',
            coordinateSystem: 'geo',
            symbolSize: function (v) { return v[3] ? 12 : 8; },
            itemStyle: { color: URGENCY_COLORS[level], borderColor: '#fff', borderWidth: 1 },
            data: points.filter(function (p) { return p.urgency === level; })
              .map(function (p) { return { name: p.no, value: [p.lon, p.lat, p.id, p.overdue] }; })
          };
        });
        chart.setOption({
          tooltip: { trigger: 'item', formatter: function (p) { return p.name || ''; } },
          legend: { bottom: 0 },
          geo: {
            map: 'district-events', roam: true,
            itemStyle: { areaColor: '#e4eefb', borderColor: '#7d8da3' },
            emphasis: { itemStyle: { areaColor: '#cfe3f7' }, label: { show: false } },
            label: { show: true, fontSize: 10, color: '#5b6878' }
          },
          series: series
        });
        chart.on('click', function (p) {
          if (p.seriesType === 'scatter' && p.value) {
            window.location.href = '/events/' + p.value[2];
          }
        });
        el.setAttribute('data-points', String(points.length));
        el.setAttribute('data-state', 'ready');
      })
      .catch(function () {
        el.setAttribute('data-state', 'error');
        el.textContent = el.getAttribute('data-label-error') || '';
      });
    window.addEventListener('resize', function () { chart.resize(); });
  }

  function showToast(text) {
    var toast = document.getElementById('live-toast');
    if (!toast) { return; }
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(showToast.timer);
    showToast.timer = setTimeout(function () { toast.hidden = true; }, 6000);
  }

  function listen() {
    var el = document.getElementById('live');
    if (!el || typeof EventSource === 'undefined') {
      return;
    }
    var statuses = {};
    try { statuses = JSON.parse(el.getAttribute('data-statuses') || '{}'); } catch (e) { statuses = {}; }
    var template = el.getAttribute('data-label-new') || '%(no)s';
    var source = new EventSource(el.getAttribute('data-live-url'));
    source.addEventListener('inbox', function (msg) {
      var data = {};
      try { data = JSON.parse(msg.data); } catch (e) { return; }
      var text = template.replace('%(no)s', data.tracking_no || '')
        .replace('%(status)s', statuses[data.status] || data.status || '');
      showToast(text);
      var target = document.querySelector('[data-live-refresh]');
      if (target && window.htmx) {
        window.htmx.trigger(target, 'live-refresh');
      }
    });
    window.addEventListener('beforeunload', function () { source.close(); });
  }

  function gps() {
    var button = document.getElementById('gps-button');
    if (!button) { return; }
    button.addEventListener('click', function () {
      if (!navigator.geolocation) {
        button.textContent = button.getAttribute('data-label-error');
        return;
      }
      navigator.geolocation.getCurrentPosition(function (pos) {
        document.getElementById('lon').value = pos.coords.longitude.toFixed(6);
        document.getElementById('lat').value = pos.coords.latitude.toFixed(6);
        document.getElementById('crs').value = 'wgs84';  // the browser reports WGS-84
      }, function () {
        button.textContent = button.getAttribute('data-label-error');
      }, { enableHighAccuracy: true, timeout: 15000 });
    });
  }

  drawMap();
  listen();
  gps();
}());
