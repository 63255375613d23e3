/*
 * citybrain — IoT device list: map of devices and live connection state.
 *
 * All visible text comes from data-label-* attributes translated by the server; device data
 * (names, keys) is untrusted and only ever set as text.
 *   #iot-map + <script id="iot-points">  ECharts map: township outlines from data-divisions-url,
 *                                        devices coloured by alarm / online / offline
 *   #iot-live[data-live-url]             EventSource: "device" messages update the table's
 *                                        connection and last-seen cells
 */
(function () {
  'use strict';

  var COLORS = { alarm: '#c62828', online: '#2e9e5b', offline: '#9aa4b2' };

  function kind(p) { return p.alarm ? 'alarm' : (p.online ? 'online' : 'offline'); }

  function drawMap() {
    var el = document.getElementById('iot-map');
    var data = document.getElementById('iot-points');
    if (!el || !data || typeof echarts === 'undefined') { return; }
    var points = JSON.parse(data.textContent || '[]');
    var chart = echarts.init(el);
    window.citybrainIotMap = { chart: chart };
    fetch(el.getAttribute('data-divisions-url'), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (resp) {
        if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
        return resp.json();
      })
      .then(function (geojson) {
        echarts.registerMap('district-iot', geojson);
        var series = ['offline', 'online', 'alarm'].map(function (k) {
          return {
            name: el.getAttribute('data-label-' + k) || k,
            type: 'scatter', coordinateSystem: 'geo', symbolSize: k === 'alarm' ? 12 : 8,
            itemStyle: { color: COLORS[k], borderColor: '#fff', borderWidth: 1 },
            data: points.filter(function (p) { return kind(p) === k; })
              .map(function (p) { return { name: p.name + ' (' + p.key + ')', value: [p.lon, p.lat], key: p.key }; })
          };
        });
        chart.setOption({
          tooltip: { trigger: 'item', formatter: function (p) { return echarts.format.encodeHTML(p.name || ''); } },
          legend: { bottom: 0 },
          geo: {
            map: 'district-iot', roam: true,
            itemStyle: { areaColor: '#e4eefb', borderColor: '#7d8da3' },
            emphasis: { itemStyle: { areaColor: '#cfe3f7' }, label: { show: false } },
            label: { show: true, fontSize: 10, color: '#5b6878' }
          },
          series: series
        });
        chart.on('click', function (p) {
          if (p.seriesType === 'scatter' && p.data && p.data.key) {
            window.location.href = '/iot/devices/' + encodeURIComponent(p.data.key);
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

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function localTime(ms) {
    // China Standard Time (UTC+8), like the server renders it.
    var d = new Date(ms + 8 * 3600 * 1000);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
  }

  function badge(cls, text, online) {
    var span = document.createElement('span');
    span.className = 'badge ' + cls;
    span.setAttribute('data-online', online ? '1' : '0');
    span.textContent = text;
    return span;
  }

  function listen() {
    var live = document.getElementById('iot-live');
    if (!live || typeof EventSource === 'undefined') { return; }
    var source = new EventSource(live.getAttribute('data-live-url'));
    source.addEventListener('open', function () { live.setAttribute('data-state', 'open'); });
    source.addEventListener('error', function () { live.setAttribute('data-state', 'reconnecting'); });
    source.addEventListener('device', function (msg) {
      var data;
      try { data = JSON.parse(msg.data); } catch (e) { return; }
      var rows = document.querySelectorAll('tr[data-device-key]');
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute('data-device-key') !== data.key) { continue; }
        var cell = rows[i].querySelector('[data-cell=online]');
        var old = cell && cell.querySelector('[data-online]');
        if (old) {
          old.replaceWith(data.online ? badge('badge-success', live.getAttribute('data-label-online'), true)
            : badge('badge-muted', live.getAttribute('data-label-offline'), false));
        }
        var seen = rows[i].querySelector('[data-cell=last-seen]');
        if (seen && data.last_seen) { seen.textContent = localTime(data.last_seen); }
        rows[i].classList.remove('iot-flash');
        void rows[i].offsetWidth;
        rows[i].classList.add('iot-flash');
      }
    });
    window.addEventListener('beforeunload', function () { source.close(); });
  }

  drawMap();
  listen();
}());
