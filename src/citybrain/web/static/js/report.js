/*
 * citybrain — citizen report page: pick the place on a small map of the district or from
 * the phone's GPS. Expects the global `echarts` and <div id="report-map" data-geojson-url
 * data-label-*>; fills the hidden #lon / #lat inputs with WGS-84 coordinates (the district
 * outlines are WGS-84, and so is navigator.geolocation).
 *
 * Signals for browser tests:
 *   #report-map[data-state="loading|ready|error"]
 *   #report-map[data-point="<lon>,<lat>"]   set when a place is chosen
 *   window.citybrainReport = {chart, ready, setPoint}
 */
(function () {
  'use strict';

  var MAP_NAME = 'report-district';
  var el = document.getElementById('report-map');
  if (!el) {
    return;
  }
  var lonInput = document.getElementById('lon');
  var latInput = document.getElementById('lat');
  var status = document.getElementById('location-status');
  var gpsButton = document.getElementById('use-gps');
  var photoInput = document.getElementById('photos');
  var labels = {
    loading: el.getAttribute('data-label-loading') || '',
    error: el.getAttribute('data-label-error') || '',
    picked: el.getAttribute('data-label-picked') || '',
    gpsError: el.getAttribute('data-label-gps-error') || '',
    gpsWait: el.getAttribute('data-label-gps-wait') || ''
  };
  var chart = null;
  var point = null;
  var api = { chart: null, ready: null, setPoint: setPoint };
  window.citybrainReport = api;

  function round(value) {
    return Math.round(value * 1e6) / 1e6;
  }

  function setStatus(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function drawPoint() {
    if (!chart) {
      return;
    }
    chart.setOption({ series: [{ id: 'picked', data: point ? [point] : [] }] });
  }

  function setPoint(lon, lat) {
    if (!isFinite(lon) || !isFinite(lat)) {
      return;
    }
    point = [round(lon), round(lat)];
    lonInput.value = String(point[0]);
    latInput.value = String(point[1]);
    el.setAttribute('data-point', point[0] + ',' + point[1]);
    setStatus(labels.picked + ': ' + point[0] + ', ' + point[1]);
    drawPoint();
  }

  function initialPoint() {
    var lon = parseFloat(lonInput.value);
    var lat = parseFloat(latInput.value);
    return isFinite(lon) && isFinite(lat) ? [lon, lat] : null;
  }

  function draw(geojson) {
    echarts.registerMap(MAP_NAME, geojson);
    chart = echarts.init(el);
    api.chart = chart;
    chart.setOption({
      animation: false,
      tooltip: { show: false },
      geo: {
        map: MAP_NAME,
        roam: true,
        scaleLimit: { min: 1, max: 40 },
        label: { show: true, fontSize: 10, color: '#4a5a70' },
        itemStyle: { areaColor: '#e8eef6', borderColor: '#7d8da3', borderWidth: 1 },
        emphasis: { disabled: true },
        select: { disabled: true }
      },
      series: [{
        id: 'picked', type: 'scatter', coordinateSystem: 'geo', symbol: 'pin', symbolSize: 30,
        itemStyle: { color: '#c62828' }, data: []
      }]
    });
    chart.getZr().on('click', function (event) {
      var coords = chart.convertFromPixel({ geoIndex: 0 }, [event.offsetX, event.offsetY]);
      if (coords) {
        setPoint(coords[0], coords[1]);
      }
    });
    window.addEventListener('resize', function () { chart.resize(); });
    var start = initialPoint();
    if (start) {
      setPoint(start[0], start[1]);
    }
    el.setAttribute('data-state', 'ready');
  }

  el.setAttribute('data-state', 'loading');
  el.textContent = labels.loading;
  api.ready = fetch(el.getAttribute('data-geojson-url'), {
    credentials: 'same-origin', headers: { 'Accept': 'application/json' }
  }).then(function (resp) {
    if (!resp.ok) {
      throw new Error('HTTP ' + resp.status);
    }
    return resp.json();
  }).then(function (geojson) {
    el.textContent = '';
    draw(geojson);
  }).catch(function () {
    el.textContent = labels.error;
    el.setAttribute('data-state', 'error');
  });

  if (gpsButton) {
    if (!navigator.geolocation) {
      gpsButton.hidden = true;
    }
    gpsButton.addEventListener('click', function () {
      setStatus(labels.gpsWait);
      navigator.geolocation.getCurrentPosition(function (pos) {
        setPoint(pos.coords.longitude, pos.coords.latitude);
      }, function () {
        setStatus(labels.gpsError);
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
    });
  }

  // The server refuses more photos too; this only saves a wasted upload on a slow connection.
  if (photoInput) {
    photoInput.addEventListener('change', function () {
      var max = parseInt(photoInput.getAttribute('data-max'), 10) || 3;
      photoInput.setCustomValidity(photoInput.files.length > max ? ('≤ ' + max) : '');
    });
  }
}());
