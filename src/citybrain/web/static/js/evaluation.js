// Bar chart of the evaluation page: on-time handling and closure rate per group (ECharts).
(function () {
  "use strict";
  var el = document.getElementById("evaluation-chart");
  var dataEl = document.getElementById("evaluation-data");
  if (!el || !dataEl || typeof echarts === "undefined") return;
  var data = JSON.parse(dataEl.textContent);
  var chart = echarts.init(el);
  chart.setOption({
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 48, right: 16, top: 36, bottom: 90 },
    xAxis: { type: "category", data: data.names, axisLabel: { rotate: 30, interval: 0 } },
    yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
    series: [
      { name: data.labels.on_time_handle, type: "bar", data: data.on_time_handle },
      { name: data.labels.on_time_close, type: "bar", data: data.on_time_close }
    ]
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
