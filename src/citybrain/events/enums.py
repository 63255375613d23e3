"""Enumerations of the unified event command (一网统管)."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    CITIZEN = "citizen"  # public report page, no account
    GRID = "grid"  # grid worker in the field
    HOTLINE = "hotline"  # 12345 call entered by staff
    API = "api"  # another system through the JSON API
    OPEN311 = "open311"  # any Open311 GeoReport v2 client
    SENSOR = "sensor"  # IoT alarm through the bus
    VIDEO = "video"  # video-AI box


class Status(StrEnum):
    """GB/T 30428 workflow: 信息收集 → 案卷建立 → 任务派遣 → 任务处理 → 处理反馈 → 核查结案."""

    REPORTED = "reported"
    NOT_ACCEPTED = "not_accepted"  # 不予受理 (final)
    ACCEPTED = "accepted"  # 受理
    REGISTERED = "registered"  # 立案
    DISPATCHED = "dispatched"  # 派遣
    IN_PROGRESS = "in_progress"  # 处置中
    HANDLED = "handled"  # 处置完成, waiting for verification
    VERIFIED = "verified"  # 核查通过
    CLOSED = "closed"  # 结案 (final)
    SUSPENDED = "suspended"  # 挂账
    MERGED = "merged"  # duplicate merged into another event (final)


OPEN_STATUSES = frozenset(set(Status) - {Status.NOT_ACCEPTED, Status.CLOSED, Status.MERGED})


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    CRITICAL = "critical"


class LocationState(StrEnum):
    LOCATED = "located"
    MANUAL = "manual"  # waiting in the manual-location queue


class TimeUnit(StrEnum):
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"
    NATURAL_HOURS = "natural_hours"


class Stage(StrEnum):
    """Stages with a time limit each (configured per small class)."""

    ACCEPT = "accept"  # reported → accepted/registered
    DISPATCH = "dispatch"  # registered → dispatched
    HANDLE = "handle"  # dispatched → handled
    VERIFY = "verify"  # handled → verified
    CLOSE = "close"  # verified → closed
