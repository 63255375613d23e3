// Quality score trend: one line per department (or per run of one resource), from the JSON the page embeds.
(function () {
  "use strict";
  var el = document.getElementById("quality-trend");
  var src = document.getElementById("quality-trend-data");
  if (!el || !src || typeof echarts === "undefined") { return; }
  var data = JSON.parse(src.textContent);
  var chart = echarts.init(el);
  chart.setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", top: 0 },
    grid: { left: 48, right: 16, top: 40, bottom: 32 },
    xAxis: { type: "category", data: data.days },
    yAxis: { type: "value", min: function (v) { return Math.max(0, Math.floor(v.min - 5)); }, max: 100 },
    series: data.series.map(function (s) {
      return { name: s.name, type: "line", data: s.data, connectNulls: true, symbolSize: 6 };
    })
  });
  el.setAttribute("data-ready", "1");
  window.addEventListener("resize", function () { chart.resize(); });
})();
