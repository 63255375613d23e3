/*
 * citybrain — the cockpit (big screen).
 *
 * Draws the snapshot the server computes (GET /api/cockpit/snapshot, embedded in the page as
 * #cp-initial) and keeps it current from the server-sent-event stream /cockpit/stream
 * (`event: snapshot`). EventSource reconnects by itself; when the server refuses the stream
 * (e.g. a revoked display token) the page asks the snapshot URL why, and either says so or
 * tries again a few seconds later — the screen never needs a reload.
 *
 * Everything is drawn with the global `echarts` from /static/vendor; the only requests are
 * same-origin URLs given as data-* attributes on #cockpit. All text comes from data-label-*
 * attributes, which the server translates.
 *
 * Signals for browser tests:
 *   #cockpit[data-state="loading|ready"]     ready once the map and first snapshot are drawn
 *   #cockpit[data-snapshot-at]               generated_at of the snapshot on screen
 *   [data-vital=open|today|overdue][data-value]
 *   [data-panel=<key>] [data-iot=value][data-value]   the IoT panels' headline figures
 *   #cockpit[data-sensors]                   sensor points drawn on the map
 *   window.citybrainCockpit = {map, snapshot, updates}
 */
(function () {
  'use strict';

  var root = document.getElementById('cockpit');
  if (!root || typeof window.echarts === 'undefined') {
    return;
  }
  var echarts = window.echarts;
  var GEO_MAP = 'cockpit-district';
  var COLORS = { normal: '#3fb6ff', urgent: '#ffb020', critical: '#ff4d6d', overdue: '#ff2d2d' };
  var SENSOR_COLORS = { normal: '#35d0a5', alarm: '#ff4d6d', offline: '#6b7a90' };
  var AQI_COLORS = ['#00e400', '#ffff00', '#ff7e00', '#ff0000', '#99004c', '#7e0023'];  // HJ 633 levels 1–6
  var REPLAY_HOURS = 24;

  function attr(name, fallback) {
    var v = root.getAttribute('data-' + name);
    return v == null ? (fallback || '') : v;
  }
  function label(name) { return attr('label-' + name); }
  function statusLabel(s) { return attr('status-' + String(s || '').replace(/_/g, '-'), s); }
  function esc(value) {
    return String(value == null ? '' : value).replace(/&/g, '&amp;').replace(/</g, '&lt;')
      .replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }
  function fmtTime(iso) {
    if (!iso) { return '—'; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return iso; }
    function p(n) { return (n < 10 ? '0' : '') + n; }
    return (d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes());
  }
  function fetchJson(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) { var e = new Error('HTTP ' + r.status); e.status = r.status; throw e; }
        return r.json();
      });
  }

  var api = { map: null, snapshot: null, updates: 0, openTownship: null, openEvent: null };
  window.citybrainCockpit = api;
  var canReadEvents = attr('can-read-events') === 'true';
  var canReadIot = attr('can-read-iot') === 'true';

  // ------------------------------------------------------------------ charts

  var charts = {};
  function chartOf(id) {
    if (!charts[id]) {
      var el = document.getElementById(id);
      charts[id] = el ? echarts.init(el, null, { renderer: 'canvas' }) : null;
    }
    return charts[id];
  }

  function drawGauge(rate) {
    var c = chartOf('cp-ontime');
    if (!c) { return; }
    document.getElementById('cp-ontime').setAttribute('data-value', rate == null ? '' : String(rate));
    c.setOption({
      animation: false,
      series: [{
        type: 'gauge', min: 0, max: 100, radius: '95%', center: ['50%', '58%'],
        startAngle: 200, endAngle: -20, splitNumber: 5,
        progress: { show: true, width: 12, itemStyle: { color: '#35d0a5' } },
        axisLine: { lineStyle: { width: 12, color: [[1, 'rgba(255,255,255,0.12)']] } },
        axisTick: { show: false }, splitLine: { length: 6, lineStyle: { color: '#5b6b85' } },
        axisLabel: { color: '#8fa3bf', fontSize: 10, distance: 16 }, pointer: { show: false },
        detail: { valueAnimation: false, fontSize: 26, color: '#e8f1ff', offsetCenter: [0, '10%'],
          formatter: function (v) { return rate == null ? '—' : v.toFixed(1) + '%'; } },
        data: [{ value: rate == null ? 0 : rate }]
      }]
    });
  }

  function drawBars(id, rows) {
    var c = chartOf(id);
    if (!c) { return; }
    rows = (rows || []).slice().reverse();
    c.setOption({
      animation: false,
      grid: { left: 8, right: 36, top: 6, bottom: 6, containLabel: true },
      xAxis: { type: 'value', show: false },
      yAxis: { type: 'category', data: rows.map(function (r) { return r.name; }),
        axisLabel: { color: '#c8d6ea', fontSize: 12, width: 110, overflow: 'truncate' },
        axisLine: { show: false }, axisTick: { show: false } },
      series: [{ type: 'bar', barWidth: '55%', data: rows.map(function (r) { return r.count; }),
        itemStyle: { color: '#3fb6ff', borderRadius: [0, 3, 3, 0] },
        label: { show: true, position: 'right', color: '#e8f1ff', fontSize: 12 } }]
    }, true);
  }

  // ------------------------------------------------------------------ panels

  function setVital(name, value) {
    var el = root.querySelector('[data-vital="' + name + '"]');
    if (el) {
      el.textContent = String(value);
      el.setAttribute('data-value', String(value));
    }
  }

  function providerBody(data) {
    if (data == null) { return '<span class="cp-muted">' + esc(label('not-connected')) + '</span>'; }
    var html = '';
    if (data.value != null) {
      html += '<div class="cp-provider-value">' + esc(data.value) +
        (data.unit ? '<small> ' + esc(data.unit) + '</small>' : '') + '</div>';
    }
    if (data.text) { html += '<div class="cp-provider-text">' + esc(data.text) + '</div>'; }
    if (data.items && data.items.length) {
      html += '<ul class="cp-provider-items">' + data.items.slice(0, 6).map(function (it) {
        return '<li><span>' + esc(it.name) + '</span><strong>' + esc(it.value) + '</strong></li>';
      }).join('') + '</ul>';
    }
    return html || '<span class="cp-muted">—</span>';
  }

  // ------------------------------------------------------------------ IoT panels

  function fill(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, function (m, k) { return values[k] == null ? '—' : values[k]; });
  }
  // The headline figure with its lines of text beside it (the right column must fit 1080 px).
  function headline(value, unit, color, lines) {
    return '<div class="cp-iot-head"><div class="cp-provider-value" data-iot="value" data-value="' +
      esc(value == null ? '' : value) + '"' + (color ? ' style="color:' + color + '"' : '') + '>' +
      esc(value == null ? '—' : value) + (unit ? '<small> ' + esc(unit) + '</small>' : '') + '</div>' +
      '<div class="cp-iot-lines">' + (lines || []).join('') + '</div></div>';
  }
  function line(text, cls) { return '<div class="cp-provider-text' + (cls ? ' ' + cls : '') + '">' + esc(text) + '</div>'; }
  function items(rows) {
    return '<ul class="cp-provider-items">' + rows.map(function (r) {
      return '<li' + (r.cls ? ' class="' + r.cls + '"' : '') + '><span>' + esc(r.name) + '</span><strong>' +
        esc(r.value) + '</strong></li>';
    }).join('') + '</ul>';
  }
  function aqiColor(level) { return level ? AQI_COLORS[level - 1] : null; }

  var IOT_PANELS = {
    device_online: function (d) {
      if (!d.total) { return line(label('no-sensors'), 'cp-muted'); }
      return headline(d.value, '%', null, [line(fill(label('online-of'), { online: d.online, total: d.total })),
        d.in_alarm ? line(d.in_alarm + ' ' + label('in-alarm'), 'is-overdue') : '']) +
        items(d.items.slice(0, 4).map(function (it) { return { name: it.name, value: it.online + '/' + it.total }; }));
    },
    aqi: function (d) {
      if (!d.stations_total) { return line(label('no-stations'), 'cp-muted'); }
      var basis = d.basis === 'hour' ? fill(label('aqi-basis-hour'), { hour: fmtTime(d.hour) }) :
        (d.basis ? label('aqi-basis-' + d.basis) : '');
      var html = headline(d.value, 'AQI', aqiColor(d.level), [
        line((d.level ? label('aqi-level-' + d.level) : '') +
          (d.primary && d.primary.length ? ' · ' + label('aqi-primary') + ' ' + d.primary.join(', ').toUpperCase() : '')),
        line(fill(label('aqi-stations'), { n: d.stations, total: d.stations_total }), 'cp-muted'),
        basis ? line(basis, 'cp-muted') : '']) +
        items(d.items.slice(0, 3).map(function (it) {
          return { name: it.name, value: it.value == null ? label('sensor-offline') : it.value,
            cls: it.level ? 'aqi-' + it.level : '' };
        }));
      return html + '<div class="cp-mini-chart" data-aqi-chart aria-label="' + esc(label('aqi-24h')) + '"></div>';
    },
    waterlogging: function (d) {
      if (!d.reporting) { return line(label('no-gauges'), 'cp-muted'); }
      return headline(d.value, d.unit, d.above ? '#ff5a6e' : null, [
        line(fill(label('above-threshold'), { n: d.above }), d.above ? 'is-overdue' : ''),
        line(fill(label('gauges-reporting'), { n: d.reporting, total: d.total }), 'cp-muted')]) +
        items(d.items.slice(0, 3).map(function (it) {
          return { name: it.name, value: it.value + ' cm' + (it.threshold != null ? ' / ' + it.threshold : ''),
            cls: it.above ? 'is-overdue' : '' };
        }));
    },
    parking: function (d) {
      if (!d.spaces) { return line(label('no-parking'), 'cp-muted'); }
      return headline(d.value, '%', null, [line(fill(label('occupied-of'), { occupied: d.occupied, spaces: d.spaces }))]) +
        items(d.items.slice(0, 3).map(function (it) { return { name: it.name, value: it.rate + '%' }; }));
    },
    iot_alarms: function (d) {
      return headline(d.value, '', d.value ? '#ff5a6e' : null, [
        line(fill(label('unacknowledged'), { n: d.unacknowledged }), 'cp-muted'),
        '<div class="cp-severities">' + d.items.map(function (it) {
          return '<span class="sev-' + esc(it.severity) + '" data-severity="' + esc(it.severity) + '">' +
            esc(label('severity-' + it.severity) || it.severity) + ' <strong>' + esc(it.value) + '</strong></span>';
        }).join('') + '</div>']) +
        '<ol class="cp-drill-list cp-alarm-list">' + (d.latest || []).slice(0, 3).map(function (a) {
          return '<li class="sev-' + esc(a.severity) + '"><time>' + esc(fmtTime(a.raised_at)) + '</time> ' +
            esc(a.product) + ' · ' + esc(a.message) + '</li>';
        }).join('') + '</ol>';
    }
  };

  function drawAqiTrend(body, series) {
    var el = body.querySelector('[data-aqi-chart]');
    if (!el) { return; }
    if (!series || !series.length) { el.hidden = true; return; }
    var c = echarts.init(el, null, { renderer: 'canvas' });
    c.setOption({
      animation: false,
      grid: { left: 30, right: 8, top: 8, bottom: 18 },
      tooltip: { trigger: 'axis', confine: true },
      xAxis: { type: 'category', data: series.map(function (r) { return fmtTime(r[0]).slice(-5); }),
        axisLabel: { color: '#8fa3bf', fontSize: 10 }, axisLine: { lineStyle: { color: '#2b4a75' } } },
      yAxis: { type: 'value', min: 0, splitLine: { lineStyle: { color: 'rgba(255,255,255,0.08)' } },
        axisLabel: { color: '#8fa3bf', fontSize: 10 } },
      series: [{ type: 'line', smooth: true, symbolSize: 3, data: series.map(function (r) { return r[1]; }),
        lineStyle: { color: '#7fd4ff' }, itemStyle: { color: '#7fd4ff' }, areaStyle: { opacity: 0.12 } }]
    });
    return c;
  }

  var panelCharts = {};
  function drawPanels(panels) {
    Object.keys(panels || {}).forEach(function (key) {
      var p = panels[key];
      var el = root.querySelector('[data-panel="' + key + '"]');
      if (!el) { return; }
      el.setAttribute('data-connected', p.connected ? 'true' : 'false');
      var body = el.querySelector('.cp-provider-body');
      if (panelCharts[key]) { panelCharts[key].dispose(); panelCharts[key] = null; }
      var special = p.connected && p.data && IOT_PANELS[key];
      try {
        body.innerHTML = special ? IOT_PANELS[key](p.data) : providerBody(p.connected ? p.data : null);
      } catch (e) {
        body.innerHTML = providerBody(p.connected ? p.data : null);  // a newer provider's shape: the plain view
      }
      if (special && key === 'aqi') { panelCharts[key] = drawAqiTrend(body, p.data.series) || null; }
    });
    var sensors = panels && panels.device_online;
    drawSensors(sensors && sensors.connected ? sensors.data : null);
  }

  function drawIndicators(ind) {
    var el = root.querySelector('[data-panel="indicators"]');
    if (!el || !ind) { return; }
    el.setAttribute('data-connected', ind.connected ? 'true' : 'false');
    var body = el.querySelector('.cp-provider-body');
    if (!ind.connected) {
      body.innerHTML = '<span class="cp-muted">' + esc(label('not-connected')) + '</span>';
      return;
    }
    var names = { on_track: label('on-track'), at_risk: label('at-risk'), behind: label('behind'), no_data: label('no-data') };
    function val(v) { return v == null || v === '' ? '—' : v; }
    body.innerHTML = '<ul class="cp-indicator-list">' + (ind.items || []).map(function (it) {
      var status = String(it.status || '');
      var latest = it.latest_value != null ? it.latest_value : it.latest;
      var target = it.target != null ? it.target : it.target_2025;
      return '<li data-status="' + esc(status) + '"><span class="cp-ind-name">' + esc(it.indicator || it.name) + '</span>' +
        '<span class="cp-ind-value">' + esc(val(latest)) + ' → ' + esc(val(target)) + esc(it.unit || '') + '</span>' +
        '<span class="cp-badge s-' + esc(status) + '">' + esc(names[status] || status) + '</span></li>';
    }).join('') + '</ul>';
  }

  function drawTicker(rows) {
    var list = document.getElementById('cp-ticker-list');
    if (!list) { return; }
    list.innerHTML = (rows || []).map(function (e) {
      return '<li class="u-' + esc(e.urgency) + (e.overdue ? ' is-overdue' : '') + '">' +
        '<time>' + esc(fmtTime(e.created_at)) + '</time> ' +
        '<span class="cp-t-no">' + esc(e.tracking_no) + '</span> ' +
        '<span>' + esc(e.township || '—') + ' · ' + esc(e.category) + '</span> ' +
        '<span class="cp-t-status">' + esc(statusLabel(e.status)) + '</span></li>';
    }).join('');
  }

  // ------------------------------------------------------------------ map

  var map = null;
  var mapReady = false;
  var townshipNames = {};
  var pointsById = {};
  var replayHour = REPLAY_HOURS;

  function geometryRings(g) {
    if (!g) { return []; }
    if (g.type === 'Polygon') { return g.coordinates.slice(); }
    if (g.type === 'MultiPolygon') {
      var out = [];
      g.coordinates.forEach(function (poly) { poly.forEach(function (r) { out.push(r); }); });
      return out;
    }
    return [];
  }

  function pointColor(urgency, overdue) {
    return overdue ? COLORS.overdue : (COLORS[urgency] || COLORS.normal);
  }

  function initMap() {
    var el = document.getElementById('cp-map');
    map = echarts.init(el, null, { renderer: 'canvas' });
    api.map = map;
    return fetchJson(attr('divisions-url')).then(function (fc) {
      var features = (fc && fc.features) || [];
      var towns = features.filter(function (f) { return f.properties && f.properties.level === 'township'; });
      var districts = features.filter(function (f) { return f.properties && f.properties.level === 'district'; });
      var mapFeatures = towns.map(function (f) {
        townshipNames[f.properties.code] = f.properties.name;
        return { type: 'Feature', id: f.properties.code, properties: { name: f.properties.code }, geometry: f.geometry };
      });
      echarts.registerMap(GEO_MAP, { type: 'FeatureCollection', features: mapFeatures });
      var lines = [];
      var minLat = 90, maxLat = -90;
      districts.forEach(function (f) {
        geometryRings(f.geometry).forEach(function (ring) {
          ring.forEach(function (c) { minLat = Math.min(minLat, c[1]); maxLat = Math.max(maxLat, c[1]); });
          lines.push({ coords: ring });
        });
      });
      var midLat = maxLat > minLat ? (minLat + maxLat) / 2 : 36.8;
      map.setOption({
        animation: false,
        tooltip: { trigger: 'item', confine: true, backgroundColor: 'rgba(8,20,40,0.92)',
          borderColor: '#2b4a75', textStyle: { color: '#e8f1ff' } },
        geo: {
          map: GEO_MAP, roam: true, aspectScale: Math.cos(midLat * Math.PI / 180),
          layoutCenter: ['50%', '50%'], layoutSize: '92%', selectedMode: false,
          label: { show: true, color: '#9fb7d6', fontSize: 13,
            formatter: function (p) { return townshipNames[p.name] || p.name; } },
          itemStyle: { areaColor: '#0f2a4d', borderColor: '#3d6ea8', borderWidth: 1 },
          emphasis: { label: { color: '#fff' }, itemStyle: { areaColor: '#1b4a80' } },
          tooltip: { show: true, formatter: function (p) { return esc(townshipNames[p.name] || p.name); } }
        },
        series: [
          { id: 'outline', type: 'lines', coordinateSystem: 'geo', polyline: true, silent: true, z: 3,
            lineStyle: { color: '#6fd3ff', width: 2.5, opacity: 0.9 }, data: lines },
          { id: 'events', type: 'scatter', coordinateSystem: 'geo', z: 5, symbolSize: 9,
            tooltip: { formatter: function (p) { return esc(p.data.tip); } }, data: [] }
        ].concat(SENSOR_STATES.map(function (state) {
          return { id: 'sensors-' + state, type: 'scatter', coordinateSystem: 'geo', z: state === 'alarm' ? 6 : 4,
            symbolSize: state === 'alarm' ? 9 : 5, large: state !== 'alarm', largeThreshold: 2000,
            itemStyle: { color: SENSOR_COLORS[state], opacity: state === 'offline' ? 0.7 : 0.9 },
            tooltip: { formatter: function (p) { var r = sensorRow(p); return r ? esc(r[5]) : ''; } }, data: [] };
        }))
      });
      map.on('click', function (p) {
        if (p.componentType === 'geo') {
          openTownship(p.name);
        } else if (p.seriesId === 'events' && p.data && p.data.eventId != null) {
          openEvent(p.data.eventId);
        } else if (String(p.seriesId || '').indexOf('sensors-') === 0) {
          openSensor(sensorRow(p));
        }
      });
      mapReady = true;
    });
  }

  function drawPoints(rows) {
    if (!mapReady || replayHour < REPLAY_HOURS) { return; }
    pointsById = {};
    var data = (rows || []).map(function (r) {
      // [id, lon, lat, urgency, overdue, tracking_no, category, township, status, due_at]
      pointsById[r[0]] = r;
      return { value: [r[1], r[2]], eventId: r[0], tip: r[5] + ' · ' + r[6],
        itemStyle: { color: pointColor(r[3], r[4]), borderColor: r[4] ? '#fff' : 'rgba(0,0,0,0)', borderWidth: 1 },
        symbolSize: r[3] === 'critical' ? 13 : (r[3] === 'urgent' ? 11 : 8) };
    });
    map.setOption({ series: [{ id: 'events', data: data }] });
  }

  // The sensor layer: [key, lon, lat, status, product index, name] rows of the device_online panel,
  // one scatter series per status (uniform style, so ECharts can draw 10,000 points in large mode).
  var SENSOR_STATES = ['offline', 'normal', 'alarm'];
  var sensorRows = { offline: [], normal: [], alarm: [] };
  var sensorProducts = [];
  var sensorsShown = true;
  var lastSensors = null;

  function sensorRow(p) {
    var state = String(p.seriesId || '').replace('sensors-', '');
    return (sensorRows[state] || [])[p.dataIndex];
  }

  function drawSensors(data) {
    lastSensors = data;
    if (!mapReady) { return; }
    sensorRows = { offline: [], normal: [], alarm: [] };
    sensorProducts = (data && data.products) || [];
    if (data && sensorsShown) {
      (data.points || []).forEach(function (r) { (sensorRows[r[3]] || sensorRows.normal).push(r); });
    }
    map.setOption({ series: SENSOR_STATES.map(function (state) {
      return { id: 'sensors-' + state, data: sensorRows[state].map(function (r) { return [r[1], r[2]]; }) };
    }) });
    root.setAttribute('data-sensors', String(sensorRows.offline.length + sensorRows.normal.length + sensorRows.alarm.length));
  }

  var sensorsToggle = document.getElementById('cp-sensors-toggle');
  if (sensorsToggle) {
    sensorsToggle.addEventListener('change', function () {
      sensorsShown = sensorsToggle.checked;
      drawSensors(lastSensors);
    });
  }

  // ------------------------------------------------------------------ side panel

  var detail = document.getElementById('cp-detail');
  function showDetail(html) {
    detail.querySelector('.cp-detail-body').innerHTML = html;
    detail.hidden = false;
  }
  detail.querySelector('[data-close]').addEventListener('click', function () { detail.hidden = true; });

  function row(name, value) {
    return '<tr><th>' + esc(label(name)) + '</th><td>' + esc(value) + '</td></tr>';
  }

  function openEvent(id) {
    var r = pointsById[id];
    if (!r) { return; }
    var html = '<h3>' + esc(r[5]) + '</h3><table class="cp-kv">' + row('tracking', r[5]) + row('category', r[6]) +
      row('township', r[7] || '—') + row('status', statusLabel(r[8])) +
      row('deadline', fmtTime(r[9]) + (r[4] ? ' · ' + label('overdue') : '')) + '</table>';
    if (canReadEvents) {
      html += '<p><a class="cp-link" data-testid="event-link" href="/events/' + encodeURIComponent(id) + '">' +
        esc(label('open-event')) + '</a></p>';
    }
    showDetail(html);
  }

  function openTownship(code) {
    fetchJson(attr('township-url') + encodeURIComponent(code)).then(function (t) {
      var html = '<h3 data-township="' + esc(t.code) + '">' + esc(t.name) + '</h3>' +
        '<div class="cp-vital-grid small"><div class="cp-vital"><span class="cp-vital-label">' + esc(label('open')) +
        '</span><span class="cp-vital-value" data-drill="open">' + esc(t.open) + '</span></div>' +
        '<div class="cp-vital is-warn"><span class="cp-vital-label">' + esc(label('overdue')) +
        '</span><span class="cp-vital-value" data-drill="overdue">' + esc(t.overdue) + '</span></div></div>' +
        '<h4>' + esc(label('by-category')) + '</h4><ul class="cp-provider-items">' +
        (t.by_category.length ? t.by_category.map(function (c) {
          return '<li><span>' + esc(c.name) + '</span><strong>' + esc(c.count) + '</strong></li>';
        }).join('') : '<li>' + esc(label('none')) + '</li>') + '</ul>' +
        '<h4>' + esc(label('events')) + '</h4><ol class="cp-drill-list">' + t.events.map(function (e) {
          var no = canReadEvents ? '<a href="/events/' + encodeURIComponent(e.id) + '">' + esc(e.tracking_no) + '</a>' : esc(e.tracking_no);
          return '<li class="' + (e.overdue ? 'is-overdue' : '') + '">' + no + ' · ' + esc(e.category) + ' · ' +
            esc(statusLabel(e.status)) + ' · ' + esc(fmtTime(e.due_at)) + '</li>';
        }).join('') + '</ol>';
      showDetail(html);
    }).catch(function (err) { if (window.console) { console.error('cockpit drill-down:', err); } });
  }

  function openSensor(r) {
    if (!r) { return; }
    var product = sensorProducts[r[4]] || [];
    var html = '<h3 data-sensor="' + esc(r[0]) + '">' + esc(r[5]) + '</h3><table class="cp-kv">' +
      row('sensor', r[0]) + row('product', product[1] || product[0] || '—') +
      row('status', label('sensor-' + r[3])) + '</table>';
    if (canReadIot) {
      html += '<p><a class="cp-link" data-testid="device-link" href="/iot/devices/' + encodeURIComponent(r[0]) + '">' +
        esc(label('open-device')) + '</a></p>';
    }
    showDetail(html);
  }

  api.openTownship = openTownship;
  api.openEvent = openEvent;
  api.openSensor = function (key) {
    var found = null;
    SENSOR_STATES.forEach(function (s) { sensorRows[s].forEach(function (r) { if (r[0] === key) { found = r; } }); });
    openSensor(found);
  };

  // ------------------------------------------------------------------ replay

  var slider = document.getElementById('cp-replay-slider');
  var replayLabel = document.getElementById('cp-replay-label');
  var replayData = null;
  var replayFetchedAt = 0;

  function drawReplay() {
    var rows = (replayData && replayData.rows) || [];
    var data = rows.filter(function (r) { return r[0] === replayHour; }).map(function (r) {
      // [hour, event_id, lon, lat, urgency, action, to_status, tracking_no]
      return { value: [r[2], r[3]], tip: r[7] + ' · ' + statusLabel(r[6] || r[5]),
        itemStyle: { color: pointColor(r[4], false) }, symbolSize: r[5] === 'report' ? 12 : 8 };
    });
    map.setOption({ series: [{ id: 'events', data: data }] });
    var start = replayData ? new Date(replayData.start) : null;
    var when = start ? fmtTime(new Date(start.getTime() + replayHour * 3600000).toISOString()) : '';
    replayLabel.textContent = label('replay-hour').replace('%(h)s', String(replayHour + 1)) + (when ? ' (' + when + ')' : '');
  }

  slider.addEventListener('input', function () {
    replayHour = Number(slider.value);
    if (replayHour >= REPLAY_HOURS) {
      replayLabel.textContent = label('replay-live');
      if (api.snapshot) { drawPoints(api.snapshot.points); }
      return;
    }
    if (replayData && Date.now() - replayFetchedAt < 60000) {
      drawReplay();
      return;
    }
    fetchJson(attr('replay-url') + '?hours=' + REPLAY_HOURS).then(function (d) {
      replayData = d;
      replayFetchedAt = Date.now();
      if (replayHour < REPLAY_HOURS) { drawReplay(); }
    }).catch(function (err) { if (window.console) { console.error('cockpit replay:', err); } });
  });

  // ------------------------------------------------------------------ snapshot

  function render(snap) {
    api.snapshot = snap;
    api.updates += 1;
    setVital('today', snap.events.today);
    setVital('open', snap.events.open);
    setVital('overdue', snap.events.overdue);
    drawGauge(snap.on_time ? snap.on_time.rate : null);
    drawBars('cp-top-categories', snap.top_categories);
    drawBars('cp-top-townships', snap.top_townships);
    drawPanels(snap.panels);
    drawIndicators(snap.indicators);
    drawTicker(snap.ticker);
    drawPoints(snap.points);
    root.setAttribute('data-snapshot-at', snap.generated_at || '');
  }

  var connection = document.getElementById('cp-connection');
  function setConnection(state, text) {
    connection.setAttribute('data-state', state);
    connection.textContent = text;
  }

  var source = null;
  function connect() {
    source = new EventSource(attr('stream-url'));
    source.addEventListener('open', function () { setConnection('live', label('live')); });
    source.addEventListener('snapshot', function (ev) {
      setConnection('live', label('live'));
      try { render(JSON.parse(ev.data)); } catch (e) { if (window.console) { console.error(e); } }
    });
    source.addEventListener('error', function () {
      if (source.readyState !== EventSource.CLOSED) {
        setConnection('reconnecting', label('reconnecting'));  // the browser retries by itself
        return;
      }
      // The server refused the stream: find out why, then try again (never a manual reload).
      fetchJson(attr('snapshot-url')).then(function (snap) {
        render(snap);
        setTimeout(connect, 3000);
      }).catch(function (err) {
        if (err && err.status === 401) {
          setConnection('invalid', label('invalid'));
          setTimeout(connect, 30000);
        } else {
          setConnection('reconnecting', label('reconnecting'));
          setTimeout(connect, 5000);
        }
      });
    });
  }

  // ------------------------------------------------------------------ start

  var clockEl = document.getElementById('cp-clock');
  function tick() { clockEl.textContent = new Date().toLocaleString(document.documentElement.lang || undefined); }
  tick();
  setInterval(tick, 1000);

  var initial = null;
  try { initial = JSON.parse(document.getElementById('cp-initial').textContent); } catch (e) { initial = null; }
  initMap().then(function () {
    if (api.snapshot) { drawPoints(api.snapshot.points); }
    drawSensors(lastSensors);
  }).catch(function (err) {
    if (window.console) { console.error('cockpit map:', err); }
  }).then(function () {
    root.setAttribute('data-state', 'ready');
  });
  if (initial) { render(initial); }
  connect();

  window.addEventListener('resize', function () {
    Object.keys(charts).forEach(function (k) { if (charts[k]) { charts[k].resize(); } });
    Object.keys(panelCharts).forEach(function (k) { if (panelCharts[k]) { panelCharts[k].resize(); } });
    if (map) { map.resize(); }
  });
})();
