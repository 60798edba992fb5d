//! What the operator commands print (docs/cli.md#output): a task's status as text or as one
//! JSON object, the progress display on stderr, and the JSON lines of `--wait`/`--watch`.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use solace_functions::message::{Action, Request};
use solace_functions::status::TaskStatus;

/// Totals a task is expected to reach: a restore's and a verify's from the backup's
/// completion record, a backup's estimated from the table's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub items: u64,
    pub bytes: u64,
    /// From DynamoDB's `ItemCount`/`TableSizeBytes`, which lag by up to six hours.
    pub estimate: bool,
}

/// One task at one moment.
#[derive(Debug, Clone)]
pub struct View {
    pub task_id: String,
    pub status: TaskStatus,
    /// The request, when the status item does not hold one (direct mode knows its own).
    pub request: Option<Request>,
    /// Run in this process (`--direct`): no status items anywhere.
    pub direct: bool,
    /// Live counters of the batches written so far (direct mode); the status item's counts
    /// move only when a segment ends.
    pub live: Option<(u64, u64)>,
    pub expected: Option<Expected>,
    /// Since the request was accepted.
    pub elapsed: Option<Duration>,
}

/// `running`, `succeeded`, `failed` or `cancelled`.
pub fn state(s: &TaskStatus) -> &'static str {
    if s.cancelled_at.is_some() {
        "cancelled"
    } else if !s.is_done() {
        "running"
    } else if s.succeeded() {
        "succeeded"
    } else {
        "failed"
    }
}

/// How long a task has run: to now while it runs, to its last count once done.
pub fn elapsed(s: &TaskStatus) -> Option<Duration> {
    let parse = |t: &Option<String>| humantime::parse_rfc3339(t.as_deref()?).ok();
    let start = parse(&s.created_at)?;
    let end = if s.is_done() {
        parse(&s.updated_at).unwrap_or_else(SystemTime::now)
    } else {
        SystemTime::now()
    };
    Some(end.duration_since(start).unwrap_or_default())
}

impl View {
    pub fn of(task_id: &str, status: TaskStatus) -> Self {
        View {
            task_id: task_id.to_owned(),
            elapsed: elapsed(&status),
            request: status.request.clone(),
            status,
            direct: false,
            live: None,
            expected: None,
        }
    }

    /// Items and bytes so far: the live counters when there are some, else the counts.
    fn so_far(&self) -> (u64, u64) {
        let counted = (self.status.items, self.status.bytes);
        match self.live {
            Some(live) if !self.status.is_done() => (live.0.max(counted.0), live.1.max(counted.1)),
            _ => counted,
        }
    }

    fn rates(&self) -> Option<(f64, f64)> {
        let secs = self.elapsed?.as_secs_f64();
        if secs < 0.5 {
            return None;
        }
        let (items, bytes) = self.so_far();
        Some((items as f64 / secs, bytes as f64 / secs))
    }

    /// Seconds left at the rate so far, while the task runs and its total is known.
    fn eta(&self) -> Option<f64> {
        let expected = self.expected?;
        if self.status.is_done() {
            return None;
        }
        let (items, _) = self.so_far();
        let (rate, _) = self.rates()?;
        if rate <= 0.0 || items == 0 {
            return None;
        }
        Some(expected.items.saturating_sub(items) as f64 / rate)
    }

    /// The status object of `status --json` and of the `status` and `summary` lines.
    pub fn to_json(&self) -> Value {
        let s = &self.status;
        let (items, bytes) = self.so_far();
        let mut v = json!({
            "task-id": self.task_id,
            "state": state(s),
            "total-segments": s.total,
            "completed-segments": s.completed,
            "failed-segments": s.failed,
            "items": items,
            "bytes": bytes,
            "segment-errors": s.errors,
            "notes": s.notes,
            "direct": self.direct,
        });
        let o = v.as_object_mut().expect("a JSON object literal");
        if let Some(r) = &self.request {
            o.insert("action".into(), r.action.as_str().into());
            if !matches!(r.action, Action::Verify | Action::Convert) {
                o.insert("table-region".into(), r.table_region.clone().into());
                o.insert("table-name".into(), r.table_name.clone().into());
            }
            if let Some((bucket, folder)) = r.convert_folder(&self.task_id) {
                o.insert("export".into(), format!("s3://{bucket}/{folder}").into());
            }
            o.insert("bucket-region".into(), r.bucket_region.clone().into());
            o.insert("bucket-name".into(), r.bucket_name.clone().into());
            o.insert("bucket-prefix".into(), r.bucket_prefix.clone().into());
        }
        for (key, value) in [
            ("created-at", &s.created_at),
            ("updated-at", &s.updated_at),
            ("cancelled-at", &s.cancelled_at),
            ("requested-by", &s.requested_by),
        ] {
            if let Some(value) = value {
                o.insert(key.into(), value.clone().into());
            }
        }
        if let Some(e) = self.elapsed {
            o.insert("elapsed-seconds".into(), round(e.as_secs_f64()).into());
        }
        if let Some((ips, bps)) = self.rates() {
            o.insert("items-per-second".into(), round(ips).into());
            o.insert("bytes-per-second".into(), round(bps).into());
        }
        if let Some(x) = self.expected {
            o.insert("expected-items".into(), x.items.into());
            o.insert("expected-bytes".into(), x.bytes.into());
            o.insert("expected-is-estimate".into(), x.estimate.into());
        }
        if let Some(eta) = self.eta() {
            o.insert("eta-seconds".into(), round(eta).into());
        }
        v
    }

    /// `solace status`'s text.
    pub fn to_text(&self) -> String {
        let s = &self.status;
        let (items, bytes) = self.so_far();
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<10}{v}\n"));
        line("task", self.task_id.clone());
        if let Some(r) = &self.request {
            line("action", r.action.as_str().to_owned());
            if !matches!(r.action, Action::Verify | Action::Convert) {
                line("table", format!("{} ({})", r.table_name, r.table_region));
            }
            if let Some((bucket, folder)) = r.convert_folder(&self.task_id) {
                line("export", format!("s3://{bucket}/{folder}"));
            }
            line(
                "backup",
                format!(
                    "s3://{}/{} ({})",
                    r.bucket_name, r.bucket_prefix, r.bucket_region
                ),
            );
        }
        line("state", state(s).to_owned());
        line(
            "segments",
            format!(
                "{} completed, {} failed, {} total",
                s.completed, s.failed, s.total
            ),
        );
        line("items", thousands(items));
        line("bytes", size(bytes));
        if let Some(e) = self.elapsed {
            line("elapsed", format!("{:.0} s", e.as_secs_f64()));
        }
        if let Some((ips, bps)) = self.rates() {
            line(
                "rate",
                format!("{} items/s, {}/s", thousands(ips as u64), size(bps as u64)),
            );
        }
        if let Some(eta) = self.eta() {
            let est = if self.expected.is_some_and(|x| x.estimate) {
                " (estimate)"
            } else {
                ""
            };
            line("eta", format!("{eta:.0} s{est}"));
        }
        if let Some(at) = &s.created_at {
            line("created", at.clone());
        }
        if let Some(at) = &s.cancelled_at {
            line("cancelled", at.clone());
        }
        for note in &s.notes {
            line("note", note.clone());
        }
        if !s.errors.is_empty() {
            let mut errors: Vec<_> = s.errors.iter().collect();
            errors.sort_by_key(|(seg, _)| {
                u32::from_str_radix(seg.trim_start_matches("0x"), 16).unwrap_or(u32::MAX)
            });
            out.push_str("failed segments:\n");
            for (seg, why) in errors {
                out.push_str(&format!("  {seg:<8}{why}\n"));
            }
            if s.failed > s.errors.len() as u64 {
                out.push_str(&format!(
                    "  … and {} more (each segment's own item holds its reason)\n",
                    s.failed - s.errors.len() as u64
                ));
            }
        }
        out
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `3.2 MiB`.
pub fn size(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

/// The live display of `--wait`/`--watch`: a progress bar on stderr (hidden when stderr is
/// not a terminal) and, with `--json`, JSON lines on stdout.
#[derive(Debug)]
pub struct Watch {
    bar: ProgressBar,
    json: bool,
}

impl Watch {
    pub fn new(label: &str, json: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:24}] {pos}/{len} segments  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Watch { bar, json }
    }

    /// Says what is being waited for before the task has a status.
    pub fn waiting(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    pub fn update(&self, view: &View) {
        let s = &view.status;
        self.bar.set_length(s.total);
        self.bar.set_position(s.completed + s.failed);
        let (items, bytes) = view.so_far();
        let mut msg = format!("{} items, {}", thousands(items), size(bytes));
        if let Some((ips, _)) = view.rates() {
            msg.push_str(&format!(", {} items/s", thousands(ips as u64)));
        }
        match (view.eta(), view.expected) {
            (Some(eta), Some(x)) if x.estimate => msg.push_str(&format!(
                ", ETA ~{} (estimated from the table's size)",
                secs(eta)
            )),
            (Some(eta), _) => msg.push_str(&format!(", ETA {}", secs(eta))),
            _ => {}
        }
        if s.failed > 0 {
            msg.push_str(&format!(", {} failed", s.failed));
        }
        self.bar.set_message(msg);
        if self.json {
            line("status", view);
        }
    }

    /// The end: the bar cleared, the summary printed on stdout.
    pub fn finish(&self, view: &View) {
        self.bar.finish_and_clear();
        if self.json {
            line("summary", view);
        } else {
            out_text(&view.to_text());
        }
    }

    pub fn abandon(&self) {
        self.bar.finish_and_clear();
    }
}

fn secs(s: f64) -> String {
    humantime::format_duration(Duration::from_secs(s.ceil() as u64)).to_string()
}

fn line(kind: &str, view: &View) {
    let mut v = view.to_json();
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), kind.into());
    }
    out(&v.to_string());
}

/// A line of data on stdout. A reader that went away (`solace tasks | head`) is not an
/// error of this command: what it no longer reads is dropped.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// Data on stdout that ends with its own newline.
pub fn out_text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(total: u64, completed: u64, failed: u64) -> TaskStatus {
        TaskStatus {
            total,
            completed,
            failed,
            ..TaskStatus::default()
        }
    }

    #[test]
    fn states_follow_the_predicates_and_a_cancel_wins() {
        assert_eq!(state(&task(4, 2, 0)), "running");
        assert_eq!(state(&task(4, 2, 1)), "running");
        assert_eq!(state(&task(4, 4, 0)), "succeeded");
        assert_eq!(state(&task(4, 3, 1)), "failed");
        let mut t = task(4, 1, 0);
        t.cancelled_at = Some("2026-12-01T00:00:00Z".into());
        assert_eq!(state(&t), "cancelled");
    }

    #[test]
    fn the_json_object_holds_the_counts_under_kebab_case_keys_and_an_eta_from_the_rate() {
        let mut view = View::of("t-1", task(4, 1, 0));
        view.status.items = 100;
        view.elapsed = Some(Duration::from_secs(10));
        view.expected = Some(Expected {
            items: 400,
            bytes: 0,
            estimate: true,
        });
        let v = view.to_json();
        assert_eq!(v["task-id"], "t-1");
        assert_eq!(v["state"], "running");
        assert_eq!(v["completed-segments"], 1);
        assert_eq!(v["items-per-second"], 10.0);
        assert_eq!(v["eta-seconds"], 30.0);
        assert_eq!(v["expected-is-estimate"], true);
        view.status.completed = 4;
        assert!(
            view.to_json().get("eta-seconds").is_none(),
            "no ETA once done"
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(size(3 * 1024 * 1024), "3.00 MiB");
    }
}
