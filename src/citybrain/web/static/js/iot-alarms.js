/*
 * citybrain — IoT alarm console: a toast and a reload hint when alarms change.
 *
 *   #iot-live[data-live-url]  EventSource: "alarm" messages show a toast
 *                             (data-label-alarm, with %(id)s, %(device)s and %(status)s) and
 *                             flash the alarm's row if it is on the page
 * The page itself stays as it is (a reload would throw away what the operator was reading);
 * alarm text is untrusted and only ever set with textContent.
 */
(function () {
  'use strict';

  function listen() {
    var live = document.getElementById('iot-live');
    var toast = document.getElementById('iot-toast');
    if (!live || typeof EventSource === 'undefined') { return; }
    var statuses = {};
    try { statuses = JSON.parse(live.getAttribute('data-statuses') || '{}'); } catch (e) { statuses = {}; }
    var source = new EventSource(live.getAttribute('data-live-url'));
    source.addEventListener('open', function () { live.setAttribute('data-state', 'open'); });
    source.addEventListener('error', function () { live.setAttribute('data-state', 'reconnecting'); });
    source.addEventListener('alarm', function (msg) {
      var data;
      try { data = JSON.parse(msg.data); } catch (e) { return; }
      if (toast) {
        toast.textContent = (live.getAttribute('data-label-alarm') || '%(id)s')
          .replace('%(id)s', data.id || '').replace('%(device)s', data.device_key || '')
          .replace('%(status)s', statuses[data.status] || data.status || '');
        toast.hidden = false;
        clearTimeout(listen.timer);
        listen.timer = setTimeout(function () { toast.hidden = true; }, 6000);
      }
      var rows = document.querySelectorAll('tr[data-alarm-id]');
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute('data-alarm-id') === data.id) {
          rows[i].classList.remove('iot-flash');
          void rows[i].offsetWidth;
          rows[i].classList.add('iot-flash');
        }
      }
    });
    window.addEventListener('beforeunload', function () { source.close(); });
  }

  listen();
}());
