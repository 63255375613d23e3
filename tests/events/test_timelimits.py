"""Working-time deadlines: lunch, nights, weekends, public holidays and adjusted working days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from citybrain.events.enums import TimeUnit
from citybrain.events.timelimits import (
    DEFAULT,
    WorkCalendar,
    due_at,
    next_working_moment,
    remaining,
    warning_at,
    working_time_between,
)

SH = ZoneInfo("Asia/Shanghai")
WH, WD, NH = TimeUnit.WORKING_HOURS, TimeUnit.WORKING_DAYS, TimeUnit.NATURAL_HOURS


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def local(moment: datetime) -> datetime:
    assert moment.tzinfo is UTC, "results are UTC"
    return moment.astimezone(SH)


# 2026-11-24 is a Tuesday, 2026-11-27 a Friday: an ordinary working week.


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        (at(2026, 11, 24, 9), 2, at(2026, 11, 24, 11)),
        (at(2026, 11, 24, 11), 2, at(2026, 11, 24, 14, 30)),  # skips 12:00–13:30
        (at(2026, 11, 24, 10), 2, at(2026, 11, 24, 12)),  # uses the morning up exactly
        (at(2026, 11, 24, 16, 30), 2, at(2026, 11, 25, 9, 30)),  # skips the night
        (at(2026, 11, 27, 16, 30), 2, at(2026, 11, 30, 9, 30)),  # skips the weekend
        (at(2026, 11, 24, 8, 30), 7.5, at(2026, 11, 24, 17, 30)),  # one whole working day
    ],
)
def test_working_hours_count_only_working_periods(start: datetime, hours: float, expected: datetime) -> None:
    assert local(due_at(start, hours, WH)) == expected


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (at(2026, 11, 24, 12, 30), at(2026, 11, 24, 14, 30)),  # inside lunch: clock starts 13:30
        (at(2026, 11, 24, 12, 0), at(2026, 11, 24, 14, 30)),  # at the close of the morning
        (at(2026, 11, 24, 7, 0), at(2026, 11, 24, 9, 30)),  # before office hours
        (at(2026, 11, 24, 20, 0), at(2026, 11, 25, 9, 30)),  # in the evening
        (at(2026, 11, 28, 10, 0), at(2026, 11, 30, 9, 30)),  # on a Saturday
    ],
)
def test_clock_starts_at_the_next_working_moment(start: datetime, expected: datetime) -> None:
    assert local(due_at(start, 1, WH)) == expected


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        (at(2026, 11, 24, 9), 1.5, at(2026, 11, 24, 10, 30)),
        (at(2026, 11, 24, 9), 0.25, at(2026, 11, 24, 9, 15)),
        (at(2026, 11, 24, 11, 45), 0.5, at(2026, 11, 24, 13, 45)),
    ],
)
def test_fractional_working_hours(start: datetime, hours: float, expected: datetime) -> None:
    assert local(due_at(start, hours, WH)) == expected


def test_holiday_package_knows_the_2026_national_day_arrangement() -> None:
    # What the tests below rely on, read from chinese_calendar rather than assumed: 2026 National
    # Day is 10-01..10-07 (10-08 is back at work); Sun 09-20 and Sat 10-10 are working days.
    assert all(chinese_calendar.is_holiday(date(2026, 10, d)) for d in range(1, 8))
    assert chinese_calendar.is_workday(date(2026, 10, 8))
    assert chinese_calendar.is_workday(date(2026, 9, 20)) and date(2026, 9, 20).weekday() == 6
    assert chinese_calendar.is_workday(date(2026, 10, 10)) and date(2026, 10, 10).weekday() == 5


def test_working_hours_skip_the_national_day_holiday() -> None:
    # 1.5 h left on Wed 09-30, nothing 10-01..10-07, then 2.5 h on Thu 10-08.
    assert local(due_at(at(2026, 9, 30, 16), 4, WH)) == at(2026, 10, 8, 11)


def test_working_hours_run_on_the_adjusted_working_saturday() -> None:
    # Fri 10-09 17:00 + 1 h: half an hour on Friday, the rest on the working Saturday 10-10.
    assert local(due_at(at(2026, 10, 9, 17), 1, WH)) == at(2026, 10, 10, 9)


def test_working_hours_run_on_the_adjusted_working_sunday() -> None:
    # Sat 09-19 is a day off, Sun 09-20 is worked in exchange for the National Day week.
    assert local(due_at(at(2026, 9, 19, 10), 1, WH)) == at(2026, 9, 20, 9, 30)


def test_working_days_keep_the_working_clock_offset_across_a_weekend() -> None:
    friday = at(2026, 11, 27, 10)
    assert local(due_at(friday, 1, WD)) == at(2026, 11, 30, 10)
    assert local(due_at(friday, 2, WD)) == at(2026, 12, 1, 10)
    assert local(due_at(friday, 0.5, WD)) == at(2026, 11, 27, 15, 15)  # 3.75 h, lunch skipped


def test_working_days_skip_the_national_day_holiday() -> None:
    assert local(due_at(at(2026, 9, 30, 10), 1, WD)) == at(2026, 10, 8, 10)


def test_natural_hours_ignore_nights_weekends_and_holidays() -> None:
    assert local(due_at(at(2026, 11, 28, 22), 2, NH)) == at(2026, 11, 29, 0)
    assert local(due_at(at(2026, 10, 1, 9), 0.25, NH)) == at(2026, 10, 1, 9, 15)


def test_start_given_in_utc_gives_the_same_deadline() -> None:
    start = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 09:00 in China
    assert due_at(start, 1, WH) == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def test_unit_may_be_given_as_text() -> None:
    assert due_at(at(2026, 11, 24, 9), 1, "working_hours") == due_at(at(2026, 11, 24, 9), 1, WH)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 24, 9)
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(naive, 1, WH)
    with pytest.raises(ValueError, match="timezone-aware"):
        remaining(naive, at(2026, 11, 24, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        warning_at(naive, at(2026, 11, 24, 10))


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf")])
def test_impossible_values_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        due_at(at(2026, 11, 24, 9), value, WH)


def test_unknown_unit_is_refused() -> None:
    with pytest.raises(ValueError):
        due_at(at(2026, 11, 24, 9), 1, "fortnights")


def test_remaining_is_negative_once_overdue() -> None:
    due = at(2026, 11, 24, 12)
    assert remaining(at(2026, 11, 24, 11), due) == timedelta(hours=1)
    assert remaining(at(2026, 11, 24, 13), due) == timedelta(hours=-1)


def test_warning_at_a_fraction_of_elapsed_time_by_default() -> None:
    start = at(2026, 11, 28, 22)
    due = due_at(start, 10, NH)
    assert local(warning_at(start, due)) == at(2026, 11, 29, 6)


def test_warning_at_a_fraction_of_working_time_with_a_calendar() -> None:
    # Fri 16:00 + 4 working hours = Mon 11:00; 80 % of the 4 h is 3.2 h → Mon 10:12, not Sunday night.
    start = at(2026, 11, 27, 16)
    due = due_at(start, 4, WH)
    assert local(due) == at(2026, 11, 30, 11)
    assert local(warning_at(start, due, calendar=DEFAULT)) == at(2026, 11, 30, 10, 12)


def test_working_time_between_counts_only_working_periods() -> None:
    assert working_time_between(at(2026, 11, 27, 16), at(2026, 11, 30, 10)) == timedelta(hours=3)
    assert working_time_between(at(2026, 11, 30, 10), at(2026, 11, 27, 16)) == timedelta()


def test_next_working_moment() -> None:
    assert local(next_working_moment(at(2026, 11, 24, 9))) == at(2026, 11, 24, 9)
    assert local(next_working_moment(at(2026, 10, 1, 9))) == at(2026, 10, 8, 8, 30)


def test_years_the_holiday_package_does_not_know_fall_back_to_monday_to_friday() -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2099, 10, 1))
    assert DEFAULT.is_workday(date(2099, 10, 1))  # a Thursday
    assert not DEFAULT.is_workday(date(2099, 10, 3))  # a Saturday
    assert local(due_at(at(2099, 10, 2, 17), 1, WH)) == at(2099, 10, 5, 9)


def test_extra_holidays_and_workdays_override_the_package() -> None:
    calendar = WorkCalendar(
        extra_holidays=frozenset({date(2099, 10, 1)}), extra_workdays=frozenset({date(2026, 11, 28)})
    )
    assert not calendar.is_workday(date(2099, 10, 1))
    assert calendar.is_workday(date(2026, 11, 28))
    assert local(due_at(at(2026, 11, 27, 17), 1, WH, calendar)) == at(2026, 11, 28, 9)


def test_holiday_package_can_be_switched_off() -> None:
    calendar = WorkCalendar(use_holiday_package=False)
    assert calendar.is_workday(date(2026, 10, 1))  # a Thursday, normally National Day
    assert not calendar.is_workday(date(2026, 10, 10))  # a Saturday, normally worked


def test_working_periods_are_configurable() -> None:
    calendar = WorkCalendar.from_text("09:00-17:00")
    assert calendar.periods == ((time(9), time(17)),)
    assert calendar.day_length == timedelta(hours=8)
    assert local(due_at(at(2026, 11, 24, 16), 2, WH, calendar)) == at(2026, 11, 25, 10)
    assert DEFAULT.day_length == timedelta(hours=7, minutes=30)


@pytest.mark.parametrize("periods", ["12:00-08:30", "08:30-12:00 11:00-17:30", "0830 1200", ""])
def test_bad_working_periods_are_refused(periods: str) -> None:
    with pytest.raises(ValueError):
        WorkCalendar.from_text(periods)
