"""Plan indicators (表1 of the district's 2021–2025 smart-city plan): definitions shipped as data,
computed values from platform data, department reports with evidence, progress toward 2025
and the annual evaluation report (监测评估)."""
