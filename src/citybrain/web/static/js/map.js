/*
 * citybrain — district map page.
 *
 * Draws the district's townships (and, when zoomed in, the unit grid) with
 * ECharts. Expects the global `echarts` (loaded from
 * /static/vendor/echarts/echarts.min.js before this file) and a
 * <div id="map" data-divisions-url data-grids-url data-label-*> element.
 *
 * All visible text comes from the element's data-label-* attributes, which
 * the server translates. No external requests: only the two same-origin
 * JSON URLs given on the element are fetched.
 *
 * Signals for browser tests:
 *   window.citybrainMap = {chart, ready, ...}  (ready resolves after the
 *                                               townships are drawn)
 *   #map[data-townships="<n>"]                  set after the townships are drawn
 *   #map[data-grid-cells="<n>"]                 set after grid cells are drawn
 *                                               ("0" when cleared on zoom-out)
 *   #map[data-state="loading|ready|error"]
 *
 * Optional: data-grid-min-zoom="<n>" sets the zoom factor from which the
 * unit grid is fetched and drawn (default 4).
 */
(function () {
  'use strict';

  var GRID_ZOOM_THRESHOLD = 4;   // geo zoom factor at which the unit grid appears (data-grid-min-zoom overrides)
  var GRID_DEBOUNCE_MS = 300;
  var GRID_PAD_RATIO = 0.25;     // fetch a bit more than the visible box, to pan without refetching
  var GEO_MAP_NAME = 'district';

  // Soft fills, one per township (cycled if there are more townships).
  var PALETTE = [
    '#cfe3f7', '#d9efd6', '#fbe3c8', '#e6dcf4', '#f8d7da', '#d4f0ee',
    '#fff2c2', '#e2e8d0', '#f6dcec', '#d8e0f0', '#e9f5c9', '#fde2d0'
  ];
  var DISTRICT_LINE_COLOR = '#0b1f3a';
  var TOWNSHIP_BORDER_COLOR = '#7d8da3';
  var GRID_LINE_COLOR = 'rgba(40, 60, 90, 0.55)';

  var el = document.getElementById('map');
  if (!el) {
    return;
  }

  var labels = {
    approx: el.getAttribute('data-label-approx') || '',
    grid: el.getAttribute('data-label-grid') || '',
    district: el.getAttribute('data-label-district') || '',
    loading: el.getAttribute('data-label-loading') || '',
    error: el.getAttribute('data-label-error') || ''
  };
  var divisionsUrl = el.getAttribute('data-divisions-url') || '/api/geo/divisions';
  var gridsUrl = el.getAttribute('data-grids-url') || '/api/geo/grids';
  var minZoomAttr = parseFloat(el.getAttribute('data-grid-min-zoom'));
  if (isFinite(minZoomAttr) && minZoomAttr > 0) {
    GRID_ZOOM_THRESHOLD = minZoomAttr;
  }

  var readyResolve, readyReject;
  var ready = new Promise(function (resolve, reject) {
    readyResolve = resolve;
    readyReject = reject;
  });
  // Mark as handled so a load failure is not also reported as an unhandled
  // rejection; callers awaiting `ready` still see the rejection.
  ready.catch(function () {});

  var api = {
    chart: null,
    ready: ready,
    zoomThreshold: GRID_ZOOM_THRESHOLD,
    refreshGrids: function () { scheduleGridUpdate(0); },
    getZoom: function () { return currentZoom(); }
  };
  window.citybrainMap = api;

  el.setAttribute('data-state', 'loading');

  // ---------------------------------------------------------------- helpers

  function escapeHtml(value) {
    return String(value == null ? '' : value)
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&#39;');
  }

  function fetchJson(url, signal) {
    var init = {
      method: 'GET',
      credentials: 'same-origin',
      headers: { 'Accept': 'application/json' }
    };
    if (signal) {
      init.signal = signal;
    }
    return fetch(url, init).then(function (resp) {
      if (!resp.ok) {
        var err = new Error('HTTP ' + resp.status + ' for ' + url);
        err.status = resp.status;
        throw err;
      }
      return resp.json();
    });
  }

  /** Outer and inner rings of a Polygon / MultiPolygon geometry, as arrays of [lon, lat]. */
  function geometryRings(geometry) {
    if (!geometry || !geometry.coordinates) {
      return [];
    }
    if (geometry.type === 'Polygon') {
      return geometry.coordinates.slice();
    }
    if (geometry.type === 'MultiPolygon') {
      var rings = [];
      geometry.coordinates.forEach(function (poly) {
        poly.forEach(function (ring) { rings.push(ring); });
      });
      return rings;
    }
    return [];
  }

  /** Outer rings only (what we draw for grid cells). */
  function outerRings(geometry) {
    if (!geometry || !geometry.coordinates) {
      return [];
    }
    if (geometry.type === 'Polygon') {
      return geometry.coordinates.length ? [geometry.coordinates[0]] : [];
    }
    if (geometry.type === 'MultiPolygon') {
      return geometry.coordinates.map(function (poly) { return poly[0]; }).filter(Boolean);
    }
    return [];
  }

  function extendBbox(bbox, rings) {
    rings.forEach(function (ring) {
      ring.forEach(function (pt) {
        if (pt[0] < bbox[0]) { bbox[0] = pt[0]; }
        if (pt[1] < bbox[1]) { bbox[1] = pt[1]; }
        if (pt[0] > bbox[2]) { bbox[2] = pt[0]; }
        if (pt[1] > bbox[3]) { bbox[3] = pt[1]; }
      });
    });
    return bbox;
  }

  function emptyBbox() {
    return [Infinity, Infinity, -Infinity, -Infinity];
  }

  function bboxValid(b) {
    return b && isFinite(b[0]) && isFinite(b[1]) && isFinite(b[2]) && isFinite(b[3]) &&
      b[2] > b[0] && b[3] > b[1];
  }

  function bboxIntersect(a, b) {
    var r = [Math.max(a[0], b[0]), Math.max(a[1], b[1]), Math.min(a[2], b[2]), Math.min(a[3], b[3])];
    return bboxValid(r) ? r : null;
  }

  function bboxContains(outer, inner) {
    return outer[0] <= inner[0] && outer[1] <= inner[1] && outer[2] >= inner[2] && outer[3] >= inner[3];
  }

  function bboxPad(b, ratio) {
    var dx = (b[2] - b[0]) * ratio;
    var dy = (b[3] - b[1]) * ratio;
    return [b[0] - dx, b[1] - dy, b[2] + dx, b[3] + dy];
  }

  function round6(x) {
    return Math.round(x * 1e6) / 1e6;
  }

  function ringCentroid(ring) {
    var sx = 0, sy = 0, n = 0;
    for (var i = 0; i < ring.length; i++) {
      sx += ring[i][0];
      sy += ring[i][1];
      n++;
    }
    return n ? [sx / n, sy / n] : [0, 0];
  }

  // ---------------------------------------------------------------- legend / status

  var wrap = el.parentNode;
  if (wrap && window.getComputedStyle(wrap).position === 'static') {
    wrap.style.position = 'relative';
  }

  var legend = wrap ? wrap.querySelector('.map-legend') : null;
  var statusEl;
  if (!legend) {
    legend = document.createElement('div');
    legend.className = 'map-legend';
    legend.setAttribute('aria-live', 'polite');
    addLegendItem('swatch swatch-township', labels.approx);
    addLegendItem('swatch swatch-line', labels.district);
    addLegendItem('swatch swatch-grid', labels.grid);
    statusEl = document.createElement('div');
    statusEl.className = 'map-status';
    legend.appendChild(statusEl);
    // Sibling of #map (not a child): ECharts owns #map's contents.
    if (wrap) {
      wrap.insertBefore(legend, el.nextSibling);
    }
  } else {
    statusEl = legend.querySelector('.map-status');
    if (!statusEl) {
      statusEl = document.createElement('div');
      statusEl.className = 'map-status';
      legend.appendChild(statusEl);
    }
  }

  function addLegendItem(swatchClass, text) {
    if (!text) {
      return;
    }
    var item = document.createElement('div');
    item.className = 'legend-item';
    var sw = document.createElement('span');
    sw.className = swatchClass;
    sw.setAttribute('aria-hidden', 'true');
    var tx = document.createElement('span');
    tx.textContent = text;
    item.appendChild(sw);
    item.appendChild(tx);
    legend.appendChild(item);
  }

  function setStatus(text, kind) {
    if (!statusEl) {
      return;
    }
    statusEl.textContent = text || '';
    statusEl.classList.toggle('is-error', kind === 'error');
    statusEl.classList.toggle('is-loading', kind === 'loading');
  }

  function showMessage(text, isError) {
    if (!wrap) {
      return;
    }
    var msg = wrap.querySelector('.map-message');
    if (!msg) {
      msg = document.createElement('div');
      msg.className = 'map-message';
      msg.setAttribute('role', isError ? 'alert' : 'status');
      wrap.appendChild(msg);
    }
    msg.classList.toggle('is-error', !!isError);
    msg.textContent = text;
  }

  function hideMessage() {
    var msg = wrap && wrap.querySelector('.map-message');
    if (msg && msg.parentNode) {
      msg.parentNode.removeChild(msg);
    }
  }

  function fail(err) {
    el.setAttribute('data-state', 'error');
    setStatus(labels.error, 'error');
    showMessage(labels.error, true);
    if (window.console && console.error) {
      console.error('citybrain map:', err);
    }
    readyReject(err);
  }

  // ---------------------------------------------------------------- chart

  if (typeof window.echarts === 'undefined') {
    fail(new Error('echarts is not loaded'));
    return;
  }

  /**
   * Let the map fill the viewport below whatever sits above it (top bar,
   * header; their height varies with the screen width and the language).
   * The stylesheet's calc() height is the fallback; min-height stays 480px.
   */
  function fitHeight() {
    var top = el.getBoundingClientRect().top + (window.pageYOffset || 0);
    var h = Math.max(480, Math.floor(window.innerHeight - top));
    if (el.style.height !== h + 'px') {
      el.style.height = h + 'px';
    }
  }
  fitHeight();

  var chart = window.echarts.init(el, null, { renderer: 'canvas' });
  api.chart = chart;

  var townshipsByCode = {};
  var districtBbox = null;
  var mapAspect = 1;         // projected width / height of the district
  var FIT_PADDING = 24;      // px kept free around the district at zoom 1

  /**
   * Pixel `layoutSize` that fits the whole district in the chart at zoom 1
   * while keeping its aspect ratio (ECharts fits the map into a
   * layoutSize × layoutSize square; left/right/top/bottom would stretch it).
   */
  function fitLayoutSize() {
    var w = Math.max(1, chart.getWidth() - 2 * FIT_PADDING);
    var h = Math.max(1, chart.getHeight() - 2 * FIT_PADDING);
    var fitW = Math.min(w, h * mapAspect);
    return Math.max(10, Math.round(mapAspect >= 1 ? fitW : fitW / mapAspect));
  }
  var drawn = false;

  setStatus(labels.loading, 'loading');
  chart.showLoading({ text: labels.loading, color: '#1f5fbf', textColor: '#1d2733', maskColor: 'rgba(234, 240, 246, 0.6)' });

  fetchJson(divisionsUrl).then(function (fc) {
    var features = (fc && fc.features) || [];
    var townships = features.filter(function (f) {
      return f && f.properties && f.properties.level === 'township' && f.geometry;
    });
    var districts = features.filter(function (f) {
      return f && f.properties && f.properties.level === 'district' && f.geometry;
    });
    if (!townships.length) {
      throw new Error('no township features in ' + divisionsUrl);
    }
    drawDivisions(townships, districts);
  }).then(function () {
    chart.hideLoading();
    hideMessage();
    setStatus('', null);
    drawn = true;
    el.setAttribute('data-state', 'ready');
    readyResolve(api);
    // The page may have been opened zoomed in already (e.g. restored state).
    scheduleGridUpdate(0);
  }).catch(function (err) {
    chart.hideLoading();
    fail(err);
  });

  function drawDivisions(townships, districts) {
    // Copy features, keyed by code so equal names can't collide.
    var mapFeatures = townships.map(function (f, i) {
      var p = f.properties;
      var code = String(p.code != null ? p.code : i);
      townshipsByCode[code] = {
        code: code,
        name: p.name != null ? String(p.name) : code,
        approximate: !!p.approximate,
        color: PALETTE[i % PALETTE.length]
      };
      return {
        type: 'Feature',
        id: code,
        properties: { name: code, code: code, label: p.name },
        geometry: f.geometry
      };
    });

    window.echarts.registerMap(GEO_MAP_NAME, { type: 'FeatureCollection', features: mapFeatures });

    var bbox = emptyBbox();
    mapFeatures.forEach(function (f) { extendBbox(bbox, geometryRings(f.geometry)); });
    var districtLines = [];
    districts.forEach(function (f) {
      var rings = geometryRings(f.geometry);
      extendBbox(bbox, rings);
      rings.forEach(function (ring) {
        if (ring.length > 1) {
          districtLines.push({ name: f.properties.name, coords: ring });
        }
      });
    });
    districtBbox = bboxValid(bbox) ? bbox : null;

    // Local equirectangular correction: 1° lon is cos(lat) × 1° lat.
    var midLat = districtBbox ? (districtBbox[1] + districtBbox[3]) / 2 : 30;
    var aspect = Math.max(0.2, Math.cos(midLat * Math.PI / 180));

    mapAspect = districtBbox ? (districtBbox[2] - districtBbox[0]) * aspect / (districtBbox[3] - districtBbox[1]) : 1;

    var regions = Object.keys(townshipsByCode).map(function (code) {
      return {
        name: code,
        itemStyle: { areaColor: townshipsByCode[code].color }
      };
    });

    chart.setOption({
      animation: false,
      tooltip: {
        trigger: 'item',
        confine: true
      },
      geo: {
        id: 'district-geo',
        map: GEO_MAP_NAME,
        roam: true,
        zoom: 1,
        scaleLimit: { min: 0.5, max: 400 },
        aspectScale: aspect,
        layoutCenter: ['50%', '50%'],
        layoutSize: fitLayoutSize(),
        selectedMode: false,
        // Component tooltips do not inherit the global formatter.
        tooltip: { show: true, formatter: townshipTooltipFormatter },
        label: {
          show: true,
          color: '#1d2733',
          fontSize: 12,
          textBorderColor: 'rgba(255,255,255,0.85)',
          textBorderWidth: 2,
          formatter: function (p) {
            var t = townshipsByCode[p.name];
            return t ? t.name : p.name;
          }
        },
        itemStyle: {
          areaColor: PALETTE[0],
          borderColor: TOWNSHIP_BORDER_COLOR,
          borderWidth: 1
        },
        emphasis: {
          label: { show: true, fontWeight: 'bold' },
          itemStyle: { areaColor: '#a9c9ef', borderColor: '#1f5fbf', borderWidth: 1.5 }
        },
        regions: regions
      },
      series: [
        {
          id: 'district-outline',
          name: labels.district,
          type: 'lines',
          coordinateSystem: 'geo',
          geoIndex: 0,
          polyline: true,
          silent: true,
          z: 5,
          lineStyle: { color: DISTRICT_LINE_COLOR, width: 3, opacity: 0.9 },
          data: districtLines
        },
        {
          id: 'unit-grid',
          name: labels.grid,
          type: 'custom',
          coordinateSystem: 'geo',
          geoIndex: 0,
          z: 4,
          renderItem: renderGridCell,
          // Draw every cell in one pass: progressive (chunked) rendering
          // leaves large responses undrawn after a roam.
          progressive: 0,
          tooltip: { formatter: gridTooltipFormatter },
          data: []
        }
      ]
    });

    el.setAttribute('data-townships', String(mapFeatures.length));
  }

  function townshipTooltipFormatter(p) {
    if (p.componentType === 'geo') {
      var t = townshipsByCode[p.name];
      if (!t) {
        return '';
      }
      var html = '<strong>' + escapeHtml(t.name) + '</strong><br>' + escapeHtml(t.code);
      if (t.approximate && labels.approx) {
        html += '<br><span style="color:#8a5a00">' + escapeHtml(labels.approx) + '</span>';
      }
      return html;
    }
    return '';
  }

  // ---------------------------------------------------------------- unit grid

  var gridCells = [];        // [{code, divisionCode, rings}]
  var gridLoadedBbox = null; // padded bbox of the last successful fetch
  var gridTruncated = false;
  var gridVisible = false;
  var gridTimer = null;
  var gridAbort = null;
  var gridSeq = 0;

  function renderGridCell(params, ecApi) {
    var cell = gridCells[ecApi.value(2)];
    if (!cell) {
      return null;
    }
    var style = {
      fill: 'rgba(0,0,0,0)',
      stroke: GRID_LINE_COLOR,
      lineWidth: 0.6
    };
    var children = cell.rings.map(function (ring) {
      var points = new Array(ring.length);
      for (var i = 0; i < ring.length; i++) {
        points[i] = ecApi.coord(ring[i]);
      }
      return { type: 'polygon', shape: { points: points }, style: style };
    });
    if (children.length === 1) {
      children[0].emphasis = { style: { stroke: '#c62828', lineWidth: 1.5, fill: 'rgba(198,40,40,0.08)' } };
      return children[0];
    }
    return { type: 'group', children: children };
  }

  function gridTooltipFormatter(p) {
    var cell = gridCells[p.value && p.value[2]];
    if (!cell) {
      return '';
    }
    var html = escapeHtml(labels.grid) + ': <strong>' + escapeHtml(cell.code) + '</strong>';
    var t = townshipsByCode[cell.divisionCode];
    if (t) {
      html += '<br>' + escapeHtml(t.name);
    }
    return html;
  }

  function currentZoom() {
    try {
      var model = chart.getModel && chart.getModel();
      var geo = model && model.getComponent('geo', 0);
      if (geo && geo.option && typeof geo.option.zoom === 'number') {
        return geo.option.zoom;
      }
    } catch (e) { /* fall through */ }
    var opt = chart.getOption();
    return (opt && opt.geo && opt.geo[0] && opt.geo[0].zoom) || 1;
  }

  /** [minLon, minLat, maxLon, maxLat] currently visible in the chart, or null. */
  function visibleBbox() {
    var w = chart.getWidth();
    var h = chart.getHeight();
    var a = chart.convertFromPixel({ geoIndex: 0 }, [0, 0]);
    var b = chart.convertFromPixel({ geoIndex: 0 }, [w, h]);
    if (!a || !b) {
      return null;
    }
    var box = [
      Math.min(a[0], b[0]), Math.min(a[1], b[1]),
      Math.max(a[0], b[0]), Math.max(a[1], b[1])
    ];
    return bboxValid(box) ? box : null;
  }

  function scheduleGridUpdate(delay) {
    if (!drawn) {
      return;
    }
    if (gridTimer) {
      clearTimeout(gridTimer);
    }
    gridTimer = setTimeout(function () {
      gridTimer = null;
      updateGrid();
    }, delay == null ? GRID_DEBOUNCE_MS : delay);
  }

  function clearGrid() {
    if (gridAbort) {
      gridAbort.abort();
      gridAbort = null;
    }
    gridSeq++;
    gridLoadedBbox = null;
    gridTruncated = false;
    if (gridVisible || gridCells.length) {
      gridCells = [];
      chart.setOption({ series: [{ id: 'unit-grid', data: [] }] });
    }
    gridVisible = false;
    el.setAttribute('data-grid-cells', '0');
    setStatus('', null);
  }

  function updateGrid() {
    if (currentZoom() < GRID_ZOOM_THRESHOLD) {
      if (gridVisible || gridAbort) {
        clearGrid();
      }
      return;
    }
    var view = visibleBbox();
    if (!view) {
      return;
    }
    if (districtBbox) {
      view = bboxIntersect(view, districtBbox);
      if (!view) {
        // Panned entirely off the district: nothing to show.
        clearGrid();
        return;
      }
    }
    if (gridVisible && gridLoadedBbox && !gridTruncated && bboxContains(gridLoadedBbox, view)) {
      return; // already have every cell in view
    }
    var query = bboxPad(view, GRID_PAD_RATIO);
    if (districtBbox) {
      query = bboxIntersect(query, districtBbox) || view;
    }
    loadGrid(query.map(round6), view.map(round6));
  }

  /**
   * Fetch the cells in `bbox`. If the server truncates the answer and
   * `tightBbox` (the visible part only) is given, ask again for just that,
   * so the cells on screen are the ones returned.
   */
  function loadGrid(bbox, tightBbox) {
    if (gridAbort) {
      gridAbort.abort();
    }
    var seq = ++gridSeq;
    var controller = typeof AbortController !== 'undefined' ? new AbortController() : null;
    gridAbort = controller;
    setStatus(labels.grid + ': ' + labels.loading, 'loading');

    var sep = gridsUrl.indexOf('?') === -1 ? '?' : '&';
    var url = gridsUrl + sep + 'bbox=' + encodeURIComponent(bbox.join(','));

    fetchJson(url, controller ? controller.signal : undefined).then(function (fc) {
      if (seq !== gridSeq) {
        return; // superseded
      }
      gridAbort = null;
      if (fc && fc.truncated && tightBbox && !bboxContains(tightBbox, bbox)) {
        loadGrid(tightBbox, null);
        return;
      }
      var cells = [];
      var data = [];
      ((fc && fc.features) || []).forEach(function (f) {
        var rings = outerRings(f && f.geometry);
        if (!rings.length) {
          return;
        }
        var p = f.properties || {};
        var c = ringCentroid(rings[0]);
        data.push([c[0], c[1], cells.length]);
        cells.push({
          code: p.code != null ? String(p.code) : '',
          divisionCode: p.division_code != null ? String(p.division_code) : '',
          rings: rings
        });
      });
      // Zoomed back out while the request was in flight.
      if (currentZoom() < GRID_ZOOM_THRESHOLD) {
        clearGrid();
        return;
      }
      gridCells = cells;
      gridTruncated = !!(fc && fc.truncated);
      gridLoadedBbox = bbox;
      gridVisible = true;
      chart.setOption({ series: [{ id: 'unit-grid', data: data }] });
      el.setAttribute('data-grid-cells', String(cells.length));
      setStatus(labels.grid + ': ' + cells.length + (gridTruncated ? '+' : ''), null);
    }).catch(function (err) {
      if (seq !== gridSeq || (err && err.name === 'AbortError')) {
        return;
      }
      gridAbort = null;
      setStatus(labels.grid + ': ' + labels.error, 'error');
      if (window.console && console.error) {
        console.error('citybrain map grid:', err);
      }
    });
  }

  chart.on('georoam', function () {
    if (!drawn) {
      return;
    }
    // Zoomed out below the threshold: drop the grid at once (no debounce).
    if (gridVisible && currentZoom() < GRID_ZOOM_THRESHOLD) {
      if (gridTimer) {
        clearTimeout(gridTimer);
        gridTimer = null;
      }
      clearGrid();
      return;
    }
    scheduleGridUpdate();
  });

  // ---------------------------------------------------------------- resize

  var resizeFrame = null;
  function onResize() {
    if (resizeFrame) {
      return;
    }
    resizeFrame = window.requestAnimationFrame(function () {
      resizeFrame = null;
      fitHeight();
      chart.resize();
      if (drawn) {
        chart.setOption({ geo: { id: 'district-geo', layoutSize: fitLayoutSize() } });
      }
      scheduleGridUpdate();
    });
  }
  window.addEventListener('resize', onResize);
  if (typeof window.ResizeObserver === 'function') {
    new window.ResizeObserver(onResize).observe(el);
  }
})();
