"""Recipients per second through each ESP's path, at 20,000 readers, and
django-newsletter 1.2.1's rate in the same run.

Each ESP runs through real Celery workers on Redis and PostgreSQL, its real Anymail
backend and the fake ESP (tests/fake_esp.py) in its own process; `smtp` runs Django's
SMTP backend against aiosmtpd's sink server. The machine's load is recorded beside each
figure. Writes its own section of benchmarks/RESULTS.md (between the `section:esps`
markers), leaving the rest of the file as it is.

    make bench-esps
    .venv/bin/python benchmarks/esps.py --subscribers 2000 --esps sendgrid,resend --no-write
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import bench  # noqa: E402 (the dispatch benchmark's helpers: seed, workers, baseline...)

from tests.fake_esp import anymail_environment  # noqa: E402

# (ESP, extra environment, what the row is called)
SCENARIOS = [
    ("mailgun", {}, "mailgun"),
    ("sendgrid", {}, "sendgrid"),
    ("sparkpost", {}, "sparkpost"),
    ("brevo", {}, "brevo"),
    ("mailjet", {}, "mailjet"),
    ("unisender_go", {}, "unisender_go"),
    ("postmark", {}, "postmark"),
    ("amazon_ses", {}, "amazon_ses"),
    ("amazon_ses", {"NEWSLETTER_PER_MESSAGE": "true"}, "amazon_ses per-message"),
    ("resend", {}, "resend"),
    ("mandrill", {}, "mandrill"),
    ("mailersend", {}, "mailersend"),
    ("smtp", {}, "smtp"),
]
START, END = "<!-- section:esps -->", "<!-- /section:esps -->"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def server(args: list[str], ready: str | None = None) -> Iterator[subprocess.Popen]:
    output = subprocess.PIPE if ready else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True
    )
    if ready:
        assert process.stdout is not None
        line = process.stdout.readline()
        if ready not in line:
            process.kill()
            raise RuntimeError(f"{args} did not start: {line!r}")
    else:
        time.sleep(1.5)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


class Load:
    """The whole machine's CPU use (all processes, ours included) and load average
    over an interval, from /proc."""

    def __init__(self) -> None:
        self.start = self._ticks()
        self.load_start = os.getloadavg()[0]

    @staticmethod
    def _ticks() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    def read(self) -> dict[str, float]:
        busy, total = self._ticks()
        share = (busy - self.start[0]) / max(1, total - self.start[1])
        return {
            "machine_cpu_busy_percent": round(100 * share, 1),
            "load_1min_start": round(self.load_start, 2),
            "load_1min_end": round(os.getloadavg()[0], 2),
        }


def run(esp: str, extra: dict[str, str], label: str, *, url: str, smtp_port: int,
        subscribers: int, concurrency: int) -> dict:  # fmt: skip
    # No clinical reviewer in a benchmark: the issue is sent unapproved.
    env = {**bench.base_env(esp, 0), **extra, "NEWSLETTER_REQUIRE_APPROVAL": "false"}
    if esp == "smtp":
        env.update(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp_port), EMAIL_USE_TLS="false")
    else:
        env.update(anymail_environment(esp, url))
    issue_id = bench.seed(subscribers, f"esps-{label.replace(' ', '-')}-{int(time.time())}")
    bench.esp_call(url, "/_fake/reset", "POST")
    with bench.workers(env, concurrency) as worker:
        bench.log(f"{label}: sending to {subscribers:,}")
        load = Load()
        result = subprocess.run(
            [sys.executable, "-c", bench.RUN_SEND, str(issue_id)], cwd=ROOT, env=env,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode:
            raise RuntimeError(f"{label}: the send failed:\n{result.stderr[-3000:]}")
        machine_load = load.read()
        pool = bench.children(worker.pid)
        cpu = sum(bench.cpu_seconds(pid) for pid in [worker.pid, *pool])
    sent = json.loads(result.stdout.strip().splitlines()[-1])
    stats = bench.esp_call(url, "/_fake/stats") if esp != "smtp" else {}
    outcome = {
        "scenario": label,
        "esp": esp,
        "subscribers": subscribers,
        "worker_processes": concurrency,
        "seconds": round(sent["seconds"], 2),
        "recipients_per_second": round(subscribers / sent["seconds"]),
        "esp_calls": stats.get("accepted_calls"),
        "template_calls": stats.get("template_calls"),
        "esp_unique_recipients": stats.get("unique_recipients"),
        "esp_duplicates": stats.get("duplicates"),
        "deliveries": sent["counts"],
        "worker_cpu_ms_per_1000": round(cpu / subscribers * 1_000_000, 1),
        **machine_load,
    }
    print(json.dumps(outcome), flush=True)
    return outcome


PATHS = {
    "mailgun": "batch, 1,000 per call",
    "sendgrid": "batch, 1,000 per call",
    "sparkpost": "batch, 1,000 per call",
    "brevo": "batch, 1,000 per call",
    "mailjet": "batch, 50 per call",
    "unisender_go": "batch, 500 per call",
    "postmark": "stored template, 500 per call",
    "amazon_ses": "stored template, 50 per call",
    "amazon_ses per-message": "per message, concurrent",
    "resend": "per message, concurrent",
    "mandrill": "per message, concurrent",
    "mailersend": "per message, concurrent",
    "smtp": "per message, concurrent (SMTP)",
}


def section(results: list[dict], dn: dict | None) -> str:
    lines = [
        START,
        "## Recipients per second per ESP",
        "",
        f"Run on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {bench.machine()}; "
        "`make bench-esps` (benchmarks/esps.py). Real Celery workers "
        f"({results[0]['worker_processes'] if results else '?'} processes, "
        "`NEWSLETTER_SEND_CONCURRENCY=8` threads each on per-message paths), PostgreSQL, "
        "Redis, each ESP's real Anymail backend and the fake ESP in its own process "
        "(`smtp`: Django's SMTP backend and aiosmtpd's sink server, no TLS). The clock runs "
        "from `start_issue` to the last row recorded sent. The machine is shared: its "
        "load is in the last columns (CPU busy over the send, all processes; 1-minute "
        "load average at the start and the end).",
        "",
        "| ESP | path | readers | seconds | recipients/s | x django-newsletter | ESP calls "
        "| template calls | duplicates | worker CPU ms per 1,000 | machine CPU busy % "
        "| load 1 min |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    base = dn["recipients_per_second"] if dn else None
    for r in results:
        ratio = f"{r['recipients_per_second'] / base:.1f}" if base else "n/a"
        lines.append(
            f"| {r['scenario']} | {PATHS.get(r['scenario'], '')} | {r['subscribers']:,} | "
            f"{r['seconds']} | {r['recipients_per_second']:,} | {ratio} | "
            f"{r['esp_calls'] if r['esp_calls'] is not None else 'n/a'} | "
            f"{r['template_calls'] if r['template_calls'] is not None else 'n/a'} | "
            f"{r['esp_duplicates'] if r['esp_duplicates'] is not None else 'n/a'} | "
            f"{r['worker_cpu_ms_per_1000']:,} | {r['machine_cpu_busy_percent']} | "
            f"{r['load_1min_start']} → {r['load_1min_end']} |"
        )
    if dn:
        lines += [
            "",
            f"django-newsletter 1.2.1 in the same run (its own venv, Anymail's Mailgun backend, "
            f"the same fake ESP, {dn['subscribers']:,} subscribers): "
            f"**{dn['recipients_per_second']:,.0f} recipients/s** ({dn['seconds']:.1f} s).",
        ]
    lines += ["", "Raw JSON lines:", "", "```"]
    lines += [json.dumps(item) for item in [*results, dn] if item]
    lines += ["```", END]
    return "\n".join(lines)


def write_section(text: str) -> None:
    path = HERE / "RESULTS.md"
    current = path.read_text() if path.exists() else ""
    if START in current and END in current:
        before, rest = current.split(START, 1)
        after = rest.split(END, 1)[1]
        path.write_text(before + text + after)
    else:
        path.write_text(current.rstrip("\n") + "\n\n" + text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--esps", default="", help="comma-separated scenario names")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    # This machine's own database for the run (bench.py's default otherwise); Redis
    # through bench.py's BENCH_REDIS_URL.
    bench.DATABASE = os.environ.get("BENCH_DATABASE", bench.DATABASE)
    bench.WORK.mkdir(parents=True, exist_ok=True)
    wanted = {name.strip() for name in args.esps.split(",") if name.strip()}
    scenarios = [s for s in SCENARIOS if not wanted or s[2] in wanted or s[0] in wanted]
    esp_port, smtp_port = free_port(), free_port()
    url = f"http://127.0.0.1:{esp_port}"
    results = []
    fake = ["-m", "tests.fake_esp", "--port", str(esp_port), "--no-bodies"]
    sink = ["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l",
            f"127.0.0.1:{smtp_port}"]  # fmt: skip
    with server(fake, ready="FAKE_ESP_URL="), server(sink):
        bench.reset_database(bench.base_env("mailgun", 0))
        for esp, extra, label in scenarios:
            results.append(
                run(esp, extra, label, url=url, smtp_port=smtp_port,
                    subscribers=args.subscribers, concurrency=args.concurrency)
            )  # fmt: skip
    dn = None if args.skip_baseline else bench.baseline(args.subscribers)
    text = section(results, dn)
    if args.no_write:
        print(text)
    else:
        write_section(text)
        bench.log("wrote the ESP section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
