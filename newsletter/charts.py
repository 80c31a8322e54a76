"""Small SVG charts drawn on the server for the admin: no JavaScript, no stylesheet
(presentation attributes only, which the Content-Security-Policy allows), and every
chart is an image with a text alternative; the same figures are in a table beside it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from newsletter import tracking
from newsletter.models import Subscriber

# Colours with at least 3:1 contrast against white, told apart by label as well.
COLOURS = {
    "delivered": "#1a7f37",
    "active": "#1a7f37",
    "joined": "#1a7f37",
    "pending": "#6e7781",
    "bounced": "#b35900",
    "soft_bounced": "#8a6d00",
    "complained": "#b3261e",
    "unsubscribed": "#0b5cad",
    "left": "#b3261e",
    "opened": "#6639ba",
    "clicked": "#8250df",
}
INK = "#24292f"
GRID = "#d0d7de"
FONT = "font-family='system-ui, sans-serif' font-size='12'"


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    value: int
    share: float  # 0..1 of the whole, drawn as the bar's length


def _svg(title: str, width: int, height: int, body: SafeString) -> SafeString:
    return format_html(
        "<svg xmlns='http://www.w3.org/2000/svg' role='img' width='{}' height='{}' "
        "viewBox='0 0 {} {}' class='chart' {}><title>{}</title>{}</svg>",
        width,
        height,
        width,
        height,
        mark_safe(FONT),  # noqa: S308 - a constant
        title,
        body,
    )


def outcome_bars(title: str, bars: Sequence[Bar]) -> SafeString:
    """Horizontal bars, one per kind of event, each labelled with its count and share."""
    label_width, bar_width, row = 170, 300, 26
    width, height = label_width + bar_width + 120, row * len(bars) + 8
    rows = []
    for n, bar in enumerate(bars):
        y = 4 + n * row
        length = max(bar.share * bar_width, 1 if bar.value else 0)
        rows.append(
            format_html(
                "<text x='0' y='{}' fill='{}'>{}</text>"
                "<rect x='{}' y='{}' width='{}' height='16' fill='{}'/>"
                "<text x='{}' y='{}' fill='{}'>{} ({})</text>",
                y + 13,
                INK,
                bar.label,
                label_width,
                y,
                _n(length),
                COLOURS.get(bar.key, INK),
                _n(label_width + length + 6),
                y + 13,
                INK,
                bar.value,
                _percent(bar.share),
            )
        )
    return _svg(title, width, height, mark_safe("".join(rows)))  # noqa: S308 - parts escaped


def rates_against_line(
    title: str, groups: Sequence[tuple[str, float, float]], line: float
) -> SafeString:
    """Per issue, its bounce rate and complaint rate as two bars, against a dashed
    line (mailbox providers' 0.3% complaint limit). A complaint bar over the line is
    drawn in red and marked with "!" as well, not by colour alone."""
    left, top, plot_height, group_width = 56, 10, 160, 64
    plot_right = left + group_width * max(len(groups), 4)
    width = plot_right + 90
    height = top + plot_height + 56
    scale_top = max([line * 2] + [max(b, c) * 1.1 for _, b, c in groups])

    def y_of(rate: float) -> float:
        return top + plot_height - rate / scale_top * plot_height

    parts = [
        format_html(
            "<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='{}'/>"
            "<text x='{}' y='{}' text-anchor='end' fill='{}'>{}</text>"
            "<text x='{}' y='{}' text-anchor='end' fill='{}'>0%</text>",
            left,
            top + plot_height,
            plot_right,
            top + plot_height,
            GRID,
            left - 4,
            _n(y_of(scale_top) + 10),
            INK,
            _percent(scale_top),
            left - 4,
            top + plot_height,
            INK,
        )
    ]
    for n, (label, bounce, complaint) in enumerate(groups):
        x = left + 8 + n * group_width
        for offset, (key, rate) in enumerate([("bounced", bounce), ("complained", complaint)]):
            over = key == "complained" and rate > line
            bar_top = y_of(rate)
            parts.append(
                format_html(
                    "<rect x='{}' y='{}' width='20' height='{}' fill='{}'>"
                    "<title>{}: {} {}</title></rect>{}",
                    x + offset * 22,
                    _n(bar_top),
                    _n(top + plot_height - bar_top),
                    "#b3261e" if over else COLOURS[key],
                    label,
                    key,
                    _percent(rate),
                    format_html(
                        "<text x='{}' y='{}' fill='#b3261e' font-weight='bold'>!</text>",
                        x + offset * 22 + 7,
                        _n(bar_top - 3),
                    )
                    if over
                    else "",
                )
            )
        parts.append(
            format_html(
                "<text x='{}' y='{}' fill='{}'>{}</text>",
                x,
                top + plot_height + 16,
                INK,
                label[:9],
            )
        )
    line_y = y_of(line)
    parts.append(
        format_html(
            "<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='#b3261e' "
            "stroke-dasharray='6 4'/><text x='{}' y='{}' fill='#b3261e'>{} line</text>",
            left,
            _n(line_y),
            plot_right,
            _n(line_y),
            plot_right + 6,
            _n(line_y + 4),
            _percent(line),
        )
    )
    parts.append(
        _legend([("bounced", "Bounce rate"), ("complained", "Complaint rate")], height - 14)
    )
    return _svg(title, width, height, mark_safe("".join(parts)))  # noqa: S308 - parts escaped


def lines_over_time(
    title: str, days: Sequence[date], series: Sequence[tuple[str, str, Sequence[int]]]
) -> SafeString:
    """One line per series (key, label, values per day)."""
    left, top, plot_width, plot_height = 56, 10, 520, 160
    width, height = left + plot_width + 20, top + plot_height + 56
    highest = max([1] + [max(values) for _, _, values in series if values])
    span = max((days[-1] - days[0]).days, 1) if days else 1

    def point(day: date, value: int) -> str:
        x = left + (day - days[0]).days / span * plot_width
        y = top + plot_height - value / highest * plot_height
        return f"{x:.1f},{y:.1f}"

    parts = [
        format_html(
            "<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='{}'/>"
            "<text x='{}' y='{}' text-anchor='end' fill='{}'>{}</text>"
            "<text x='{}' y='{}' text-anchor='end' fill='{}'>0</text>"
            "<text x='{}' y='{}' fill='{}'>{}</text>"
            "<text x='{}' y='{}' text-anchor='end' fill='{}'>{}</text>",
            left,
            top + plot_height,
            left + plot_width,
            top + plot_height,
            GRID,
            left - 4,
            top + 10,
            INK,
            highest,
            left - 4,
            top + plot_height,
            INK,
            left,
            top + plot_height + 16,
            INK,
            days[0].isoformat() if days else "",
            left + plot_width,
            top + plot_height + 16,
            INK,
            days[-1].isoformat() if days else "",
        )
    ]
    for key, label, values in series:
        parts.append(
            format_html(
                "<polyline fill='none' stroke='{}' stroke-width='2' points='{}'>"
                "<title>{}</title></polyline>",
                COLOURS.get(key, INK),
                " ".join(point(day, value) for day, value in zip(days, values, strict=True)),
                label,
            )
        )
    parts.append(_legend([(key, label) for key, label, _ in series], height - 14))
    return _svg(title, width, height, mark_safe("".join(parts)))  # noqa: S308 - parts escaped


def joined_and_left(title: str, months: Sequence[tuple[str, int, int]]) -> SafeString:
    """Per month, who joined (a bar up) and who left (a bar down) around one axis."""
    left, top, half, column = 40, 10, 70, 56
    width = left + column * max(len(months), 1) + 10
    height = top + half * 2 + 40
    highest = max([1] + [max(joined, gone) for _, joined, gone in months])
    axis = top + half
    parts = [
        format_html(
            "<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='{}'/>",
            left,
            axis,
            width - 10,
            axis,
            GRID,
        )
    ]
    for n, (label, joined, gone) in enumerate(months):
        x = left + 6 + n * column
        up, down = joined / highest * half, gone / highest * half
        parts.append(
            format_html(
                "<rect x='{}' y='{}' width='16' height='{}' fill='{}'>"
                "<title>{}: {} joined</title></rect>"
                "<rect x='{}' y='{}' width='16' height='{}' fill='{}'>"
                "<title>{}: {} left</title></rect>"
                "<text x='{}' y='{}' fill='{}'>{}</text>",
                x,
                _n(axis - up),
                _n(up),
                COLOURS["joined"],
                label,
                joined,
                x + 17,
                axis,
                _n(down),
                COLOURS["left"],
                label,
                gone,
                x,
                top + half * 2 + 14,
                INK,
                label,
            )
        )
    parts.append(_legend([("joined", "Joined"), ("left", "Left")], height - 8))
    return _svg(title, width, height, mark_safe("".join(parts)))  # noqa: S308 - parts escaped


def _legend(entries: Sequence[tuple[str, str]], y: int) -> SafeString:
    """Colour keys in a row, each as wide as its label (about 7 px a character)."""
    items, x = [], 12
    for key, label in entries:
        items.append((x, y - 9, COLOURS.get(key, INK), x + 14, y, INK, label))
        x += 14 + 7 * len(label) + 16
    return format_html_join(
        "",
        "<rect x='{}' y='{}' width='10' height='10' fill='{}'/>"
        "<text x='{}' y='{}' fill='{}'>{}</text>",
        items,
    )


def _n(value: float) -> str:
    return f"{value:.1f}"


def _percent(share: float) -> str:
    if share >= 0.1:
        return f"{share * 100:.0f}%"
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + "%"


# --- The charts of the admin pages -------------------------------------------------------


def issue_outcome_chart(outcome: tracking.IssueOutcome) -> SafeString:
    bars = [Bar(row.kind, row.label, row.readers, row.share) for row in outcome.rows()]
    return outcome_bars(f"What became of {outcome.sent} messages sent", bars)


def list_health_charts(health: tracking.ListHealth) -> dict[str, SafeString]:
    statuses = dict(Subscriber.Status.choices)
    days = [snapshot.day for snapshot in health.snapshots]
    return {
        "by_status": lines_over_time(
            "Subscribers by status, one point a day",
            days,
            [
                (key, str(label), [s.counts.get(key, 0) for s in health.snapshots])
                for key, label in statuses.items()
            ],
        ),
        "months": joined_and_left(
            "Joined and left per month",
            [
                (f"{m.month:%b %y}", m.joined, m.unsubscribed + m.suppressed + m.erased)
                for m in health.months
            ],
        ),
        "rates": rates_against_line(
            "Bounce and complaint rate per issue",
            [(i.issue.slug, i.bounce_rate, i.complaint_rate) for i in health.issues],
            tracking.COMPLAINT_LINE,
        ),
    }
