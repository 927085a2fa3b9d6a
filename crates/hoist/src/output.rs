//! Docker's ways of printing: sizes, times, `--format` templates and tables.

use crate::cmd::Error;
use crate::template::Template;
use serde_json::Value;
use std::io::Write;

/// Ends the process as a Go program (Docker) does when stdout or stderr is a
/// closed pipe (`hoist images | head -1`): killed by SIGPIPE, with no message.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: restoring SIGPIPE's default disposition and raising it have no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

/// Makes a print to a closed stdout or stderr end the process as Go's runtime
/// does, instead of Rust's panic ("failed printing to stdout: Broken pipe").
/// SIGPIPE stays ignored otherwise, so that a write to any other pipe (a
/// credential helper, a client socket) is an error the code handles, as in Go.
pub fn die_quietly_on_closed_stdout() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // std's print macros panic with exactly this text on a failed write.
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            die_of_sigpipe();
        }
        previous(info);
    }));
}

pub use hoist_oci::units::{human_size, human_size_precision};

/// go-units' `HumanDuration`: "3 days", "About an hour", "Less than a second".
pub fn human_duration(secs: i64) -> String {
    let hours = (secs + 1800) / 3600; // Go rounds the duration to the hour here
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// Parses a config's `created` (RFC 3339).
pub fn parse_time(created: Option<&str>) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
}

/// "3 days ago", as Docker's `CREATED` column; Docker shows an unknown time as the epoch's age.
pub fn ago(created: Option<&str>) -> String {
    let t = parse_time(created).map_or(0, |t| t.timestamp());
    format!("{} ago", human_duration(chrono::Utc::now().timestamp() - t))
}

/// Go's `time.Time.String()` in UTC, as Docker's `CreatedAt`: `2024-01-02 03:04:05 +0000 UTC`.
pub fn go_time_string(created: Option<&str>) -> String {
    let t = parse_time(created).map_or(0, |t| t.timestamp());
    let t = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
    t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

/// Go's RFC 3339 with nanoseconds (`time.RFC3339Nano`): the fraction without
/// trailing zeros, `Z` for UTC.
pub fn rfc3339_nano(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos > 0 {
        let f = format!("{nanos:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    if t.offset().local_minus_utc() == 0 {
        s.push('Z');
    } else {
        s.push_str(&t.format("%:z").to_string());
    }
    s
}

/// Go's `text/tabwriter` as Docker's formatter sets it up
/// (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`): tab-terminated cells, each
/// column as wide as its widest cell plus 3, at least 10; a line's last cell
/// is not a column. Columns are aligned within blocks of consecutive lines
/// that have the cell, as Go's does.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

fn cell_width(s: &str) -> usize {
    s.chars().count()
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = MIN_WIDTH;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(cell_width(lines[this][column]) + PADDING);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &[usize],
    out: &mut String,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                let pad = widths[j].saturating_sub(cell_width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

/// A command's `--format`, read as Docker reads it.
pub struct Formatter {
    template: Template,
    table: bool,
}

impl Formatter {
    /// `""` and `table` give the command's default table; `table TEMPLATE` a
    /// table of that template; `json` one JSON object per row (`{{json .}}`);
    /// anything else is a Go template run once per row.
    pub fn new(format: &str, default_table: &str) -> Result<Formatter, Error> {
        let format = match format {
            "" | "table" => default_table,
            "json" => "{{json .}}",
            f => f,
        };
        // Docker's IsTable: any format that starts with `table`.
        let (src, table) = match format.strip_prefix("table") {
            Some(rest) => (rest, true),
            None => (format, false),
        };
        // Docker's preFormat: trim spaces, then `\t` and `\n` typed in the shell become tab and newline.
        let src = src
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let template = Template::parse(&src)
            .map_err(|e| Error::Msg(format!("template parsing error: {e}")))?;
        Ok(Formatter { template, table })
    }

    /// The text for `rows`: a header row from `headers` (a map of field → column name) first in table mode.
    pub fn render(&self, headers: &Value, rows: &[Value]) -> Result<String, Error> {
        let run_err =
            |e: crate::template::TemplateError| Error::Msg(format!("template parsing error: {e}"));
        let mut text = String::new();
        if self.table {
            text.push_str(&self.template.execute_header(headers).map_err(run_err)?);
            text.push('\n');
        }
        for r in rows {
            text.push_str(&self.template.execute(r).map_err(run_err)?);
            text.push('\n');
        }
        Ok(if self.table { tabwrite(&text) } else { text })
    }

    /// Declares the Go structs behind the data, for the order `json` writes their fields in.
    pub fn with_structs(mut self, structs: crate::template::StructOrders) -> Formatter {
        self.template = self.template.with_structs(structs);
        self
    }

    /// Declares the Go types of fields the data may lack, for printing their zero values.
    pub fn with_zeros(mut self, zeros: crate::template::Zeros) -> Formatter {
        self.template = self.template.with_zeros(zeros);
        self
    }

    /// Renders and prints to stdout.
    pub fn print(&self, headers: &Value, rows: &[Value]) -> Result<(), Error> {
        let text = self.render(headers, rows)?;
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => die_of_sigpipe(),
            r => r.map_err(|e| Error::Msg(format!("write output: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_like_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(59 * 60), "59 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(100 * 86400), "3 months");
        assert_eq!(human_duration(3 * 365 * 86400), "3 years");
    }

    #[test]
    fn times_print_as_go() {
        assert_eq!(
            go_time_string(Some("2024-01-02T03:04:05.5Z")),
            "2024-01-02 03:04:05 +0000 UTC"
        );
        let t = parse_time(Some("2024-01-02T03:04:05.120Z")).expect("time");
        assert_eq!(rfc3339_nano(&t), "2024-01-02T03:04:05.12Z");
        let t = parse_time(Some("2024-01-02T03:04:05+01:00")).expect("time");
        assert_eq!(rfc3339_nano(&t), "2024-01-02T03:04:05+01:00");
    }

    #[test]
    fn tabwriter_pads_as_docker() {
        let t = tabwrite("REPOSITORY\tTAG\tIMAGE ID\nbusybox\tlatest\tabc\n");
        assert_eq!(
            t,
            "REPOSITORY   TAG       IMAGE ID\nbusybox      latest    abc\n"
        );
        // A line without the column ends the block: columns align within blocks.
        let t = tabwrite("a\tb\nlonger-cell-here\tc\nplain\nx\ty\n");
        assert_eq!(
            t,
            "a                  b\nlonger-cell-here   c\nplain\nx         y\n"
        );
    }

    #[test]
    fn formats_as_docker_reads_them() {
        let rows = [
            json!({"ID": "abc", "Size": "1MB"}),
            json!({"ID": "defg", "Size": "2kB"}),
        ];
        let headers = json!({"ID": "IMAGE ID", "Size": "SIZE"});
        let f = Formatter::new(r"table {{.ID}}\t{{.Size}}", "").expect("format");
        assert_eq!(
            f.render(&headers, &rows).expect("render"),
            "IMAGE ID   SIZE\nabc        1MB\ndefg       2kB\n"
        );
        let f = Formatter::new("{{.ID}}:{{.Size}}", "").expect("format");
        assert_eq!(
            f.render(&headers, &rows).expect("render"),
            "abc:1MB\ndefg:2kB\n"
        );
        let f = Formatter::new("json", "").expect("format");
        assert_eq!(
            f.render(&headers, &rows[..1]).expect("render"),
            "{\"ID\":\"abc\",\"Size\":\"1MB\"}\n"
        );
        let f = Formatter::new("", "table {{.ID}}").expect("format");
        assert_eq!(
            f.render(&headers, &rows[..1]).expect("render"),
            "IMAGE ID\nabc\n"
        );
        assert!(Formatter::new("{{.ID", "").is_err());
    }
}
