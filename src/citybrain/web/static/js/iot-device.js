/*
 * citybrain — IoT device detail: history charts per numeric property and live latest values.
 *
 *   .iot-chart[data-series-url][data-prop]  ECharts line (average) with a min–max band, loaded
 *                                           from ?prop=&range=; [data-range] buttons switch range
 *   #iot-live[data-live-url]                EventSource for this device: "device" messages
 *                                           update the latest values and the online badge
 * Values coming from the device are untrusted: they are only ever set with textContent, and
 * the tooltips escape them.
 */
(function () {
  'use strict';

  var charts = [];

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function localTime(ms, withDate) {
    var d = new Date(ms + 8 * 3600 * 1000);  // China Standard Time, like the server
    var time = pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
    return withDate ? (pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' + time) : time;
  }

  function load(box, range) {
    var url = box.getAttribute('data-series-url') + '?prop=' + encodeURIComponent(box.getAttribute('data-prop')) +
      '&range=' + encodeURIComponent(range);
    box.setAttribute('data-state', 'loading');
    fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (resp) {
        if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
        return resp.json();
      })
      .then(function (series) { draw(box, series, range); })
      .catch(function () {
        box.setAttribute('data-state', 'error');
        box.textContent = box.getAttribute('data-label-error') || '';
      });
  }

  function draw(box, series, range) {
    var chart = echarts.getInstanceByDom(box) || echarts.init(box);
    if (charts.indexOf(chart) < 0) { charts.push(chart); }
    var pts = series.points || [];
    var long = range === '7d' || range === '30d';
    var avg = pts.map(function (p) { return [p[0], p[1]]; });
    var low = pts.map(function (p) { return [p[0], p[2]]; });
    var band = pts.map(function (p) { return [p[0], p[3] - p[2]]; });
    var label = function (name) { return box.getAttribute('data-label-' + name) || name; };
    var out = [{ name: label('avg'), type: 'line', showSymbol: pts.length < 60, data: avg, z: 3, lineStyle: { width: 1.5 } }];
    if (series.source === 'rollup') {
      out.push({ name: label('min'), type: 'line', data: low, stack: 'band', symbol: 'none', lineStyle: { opacity: 0 }, tooltip: { show: false } });
      out.push({ name: label('max'), type: 'line', data: band, stack: 'band', symbol: 'none', lineStyle: { opacity: 0 },
        areaStyle: { color: 'rgba(47,116,217,.15)' }, tooltip: { show: false } });
    }
    chart.setOption({
      animation: false,
      grid: { left: 50, right: 16, top: 16, bottom: 28 },
      tooltip: {
        trigger: 'axis',
        formatter: function (items) {
          var p = items && items[0];
          if (!p) { return ''; }
          var point = pts[p.dataIndex] || [];
          var text = localTime(point[0], true) + ' · ' + Number(point[1]).toPrecision(4);
          if (series.source === 'rollup') {
            text += ' (' + Number(point[2]).toPrecision(4) + ' – ' + Number(point[3]).toPrecision(4) + ', n=' + point[4] + ')';
          }
          return echarts.format.encodeHTML(text + ' ' + (box.getAttribute('data-unit') || ''));
        }
      },
      xAxis: { type: 'time', min: series.start_ms, max: series.end_ms,
        axisLabel: { formatter: function (v) { return localTime(v, long); } } },
      yAxis: { type: 'value', scale: true },
      series: out,
      graphic: pts.length ? [] : [{ type: 'text', left: 'center', top: 'middle',
        style: { text: box.getAttribute('data-label-empty') || '', fill: '#5b6878' } }]
    }, true);
    box.setAttribute('data-points', String(pts.length));
    box.setAttribute('data-source', series.source + (series.period_s ? ':' + series.period_s : ''));
    box.setAttribute('data-state', 'ready');
  }

  function setup() {
    if (typeof echarts === 'undefined') { return; }
    var boxes = document.querySelectorAll('.iot-chart[data-series-url]');
    var buttons = document.querySelectorAll('[data-range]');
    var current = '24h';
    function all(range) {
      current = range;
      for (var i = 0; i < buttons.length; i++) {
        buttons[i].classList.toggle('btn-primary', buttons[i].getAttribute('data-range') === range);
        buttons[i].setAttribute('aria-pressed', buttons[i].getAttribute('data-range') === range ? 'true' : 'false');
      }
      for (var j = 0; j < boxes.length; j++) { load(boxes[j], range); }
    }
    for (var k = 0; k < buttons.length; k++) {
      buttons[k].addEventListener('click', function (e) { all(e.currentTarget.getAttribute('data-range')); });
    }
    all(current);
    window.addEventListener('resize', function () { charts.forEach(function (c) { c.resize(); }); });
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
      var values = data.data || {};
      Object.keys(values).forEach(function (prop) {
        var row = document.querySelector('tr[data-prop="' + CSS.escape(prop) + '"] [data-value]');
        if (row) {
          var v = values[prop];
          row.textContent = typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v);
        }
      });
      var badge = document.querySelector('[data-testid=device-online]');
      if (badge) {
        badge.setAttribute('data-online', data.online ? '1' : '0');
        var span = document.createElement('span');
        span.className = 'badge ' + (data.online ? 'badge-success' : 'badge-muted');
        span.textContent = live.getAttribute(data.online ? 'data-label-online' : 'data-label-offline');
        badge.replaceChildren(span);
      }
      var seen = document.querySelector('[data-testid=device-last-seen]');
      if (seen && data.last_seen) {
        var d = new Date(data.last_seen + 8 * 3600 * 1000);
        seen.textContent = d.toISOString().slice(0, 19).replace('T', ' ');
      }
    });
    window.addEventListener('beforeunload', function () { source.close(); });
  }

  setup();
  listen();
}());
