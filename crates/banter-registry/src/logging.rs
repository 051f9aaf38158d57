//! Log setup: which lines are written (the filter), how (text or JSON on
//! stderr), and the span every request runs in, whose id, method and path
//! are on each line the request logs.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{DefaultFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// A filter spec in its cheapest form.
#[derive(Debug)]
pub enum LogFilter {
    /// Only `target=level` directives: decided per callsite, once, with no
    /// work per span (an [`EnvFilter`] looks every span up on enter, exit
    /// and close, which is a measurable part of a cached read).
    Targets(Box<Targets>),
    /// Span or field directives (`[request]=debug`): need the env filter.
    Env(Box<EnvFilter>),
}

impl LogFilter {
    /// `spec` in tracing's env-filter syntax; one that does not parse falls back to `info`.
    pub fn parse(spec: &str) -> Self {
        // `Targets` would read `[span]` as a target name: only plain
        // `target=level` lists are its to parse.
        let plain = !spec.contains(['[', ']', '{', '}']);
        if plain && let Ok(targets) = spec.parse::<Targets>() {
            return Self::Targets(Box::new(targets));
        }
        Self::Env(Box::new(
            EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info")),
        ))
    }
}

/// Installs the global subscriber: `filter` decides, `format` writes to stderr.
pub fn init(filter: LogFilter, format: LogFormat) {
    let (targets, env) = match filter {
        LogFilter::Targets(t) => (Some(*t), None),
        LogFilter::Env(e) => (None, Some(*e)),
    };
    let ansi = std::io::stderr().is_terminal();
    let text = matches!(format, LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .fmt_fields(RequestFieldsFirst::text())
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let json = matches!(format, LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .fmt_fields(RequestFieldsFirst::json())
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(targets)
        .with(env)
        .with(text)
        .with(json)
        .init();
    learn_request_span();
}

/// Notes the request span's callsite, so its fields take the direct path.
/// Called once the subscriber is installed and before any request (a
/// request span made earlier would go the general way, its values quoted).
fn learn_request_span() {
    if let Some(meta) = request_span("", "", "").metadata() {
        let _ = REQUEST_SPAN.set(meta.callsite());
    }
}

/// The span a request runs in. Its fields are `&str`, which the formatter
/// below writes as they are: a method token, a request path and a request
/// id of visible ASCII (`x-request-id` that is not is replaced) hold no
/// space, quote, control character or escape.
pub fn request_span(method: &str, path: &str, request_id: &str) -> tracing::Span {
    tracing::info_span!("request", method, path, request_id)
}

/// The callsite of [`request_span`], once the subscriber is installed.
static REQUEST_SPAN: OnceLock<Identifier> = OnceLock::new();

/// Field formatting as `tracing-subscriber`'s own (`N`), except for the
/// request span, whose three strings are written straight into the span's
/// text. The general formatters style each name and go through
/// `fmt::Debug` for every value, and a span's fields are formatted when it
/// is made, for every request: that was the largest part of its logging
/// cost although a successful read logs nothing.
#[derive(Debug, Default)]
pub struct RequestFieldsFirst<N> {
    inner: N,
    json: bool,
}

impl RequestFieldsFirst<DefaultFields> {
    /// Text lines: `method=GET path=/v1/packs request_id=…`, as `DefaultFields` writes them.
    pub fn text() -> Self {
        Self {
            inner: DefaultFields::new(),
            json: false,
        }
    }
}

impl RequestFieldsFirst<JsonFields> {
    /// JSON lines: `{"method":"GET","path":"/v1/packs","request_id":"…"}`, as `JsonFields` writes them.
    pub fn json() -> Self {
        Self {
            inner: JsonFields::new(),
            json: true,
        }
    }
}

impl<'w, N> FormatFields<'w> for RequestFieldsFirst<N>
where
    N: for<'a> FormatFields<'a>,
{
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        // Styled (terminal) output is for people, not for speed.
        if let Some(request) = REQUEST_SPAN.get()
            && !writer.has_ansi_escapes()
        {
            let mut staged = Staged::default();
            let mut direct = Direct {
                request,
                json: self.json,
                writer: &mut staged,
                written: 0,
                other: false,
                result: Ok(()),
            };
            fields.record(&mut direct);
            if !direct.other {
                if direct.json && direct.written > 0 {
                    direct.writer.write_char('}')?;
                }
                direct.result?;
                return writer.write_str(staged.as_str()?);
            }
        }
        self.inner.format_fields(writer, fields)
    }

    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &tracing::span::Record<'_>) -> fmt::Result {
        if !self.json {
            if !current.fields.is_empty() {
                current.fields.push(' ');
            }
            return self.format_fields(current.as_writer(), fields);
        }
        // JSON: `JsonFields` merges the new fields into the object already
        // written (JSON lines are never styled, so nothing is lost in the move).
        let mut theirs = FormattedFields::<N>::new(std::mem::take(&mut current.fields));
        let merged = self.inner.add_fields(&mut theirs, fields);
        current.fields = theirs.fields;
        merged
    }
}

/// Writes the request span's fields; notes any other field set, which the
/// general formatter then writes (before this has written anything: the
/// first field decides).
struct Direct<'a> {
    request: &'a Identifier,
    json: bool,
    writer: &'a mut Staged,
    written: usize,
    other: bool,
    result: fmt::Result,
}

impl Visit for Direct<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.other || self.result.is_err() {
            return;
        }
        if field.callsite() != *self.request {
            self.other = true;
            return;
        }
        let w = &mut *self.writer;
        self.result = if self.json {
            // Field names are Rust identifiers: nothing in them to escape.
            let open = if self.written == 0 { "{\"" } else { ",\"" };
            w.write_str(open)
                .and_then(|()| w.write_str(field.name()))
                .and_then(|()| w.write_str("\":"))
                .and_then(|()| json_string(w, value))
        } else {
            let sep = if self.written == 0 { "" } else { " " };
            // Plain writes: `write!` would go through the formatting machinery.
            w.write_str(sep)
                .and_then(|()| w.write_str(field.name()))
                .and_then(|()| w.write_char('='))
                .and_then(|()| w.write_str(value))
        };
        self.written += 1;
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {
        // The request span records strings only: anything else is another field set.
        if self.written == 0 {
            self.other = true;
        }
    }
}

/// Text put together on the stack, so that the span's own string is
/// allocated once at its final size instead of growing write by write.
struct Staged {
    buf: [u8; 256],
    len: usize,
    /// Where the text goes once it outgrows the buffer.
    spilled: String,
}

impl Default for Staged {
    fn default() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
            spilled: String::new(),
        }
    }
}

impl Staged {
    fn as_str(&self) -> Result<&str, fmt::Error> {
        if self.spilled.is_empty() {
            // Only whole `&str`s are ever copied in: always UTF-8.
            std::str::from_utf8(&self.buf[..self.len]).map_err(|_| fmt::Error)
        } else {
            Ok(&self.spilled)
        }
    }
}

impl fmt::Write for Staged {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if self.spilled.is_empty()
            && let Some(room) = self.buf.get_mut(self.len..end)
        {
            room.copy_from_slice(s.as_bytes());
            self.len = end;
            return Ok(());
        }
        if self.spilled.is_empty() {
            let staged = std::str::from_utf8(&self.buf[..self.len]).map_err(|_| fmt::Error)?;
            self.spilled.push_str(staged);
        }
        self.spilled.push_str(s);
        Ok(())
    }
}

/// `text` as a JSON string: `"`, `\\` and control characters below U+0020
/// escaped, as JSON requires. Those are all ASCII, and UTF-8 never uses an
/// ASCII byte inside a longer character, so a byte scan finds them and the
/// runs between are written whole.
fn json_string(w: &mut impl fmt::Write, text: &str) -> fmt::Result {
    w.write_char('"')?;
    let mut start = 0;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0..=0x1f => "",
            _ => continue,
        };
        w.write_str(text.get(start..i).ok_or(fmt::Error)?)?;
        if escaped.is_empty() {
            write!(w, "\\u{:04x}", b)?;
        } else {
            w.write_str(escaped)?;
        }
        start = i + 1;
    }
    w.write_str(text.get(start..).ok_or(fmt::Error)?)?;
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::{LogFilter, RequestFieldsFirst, learn_request_span, request_span};
    use std::sync::{Arc, Mutex};
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut out = self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("not poisoned").clone()).expect("UTF-8 logs")
        }
    }

    /// A request line and a line in another span, as the subscriber of `json` writes them.
    fn log_lines(json: bool) -> Vec<String> {
        logged(json, || {
            request_span("PUT", "/v1/packs/a\"b\\c", "req-7\t").in_scope(|| {
                tracing::info!(pack = "p", "published");
            });
            tracing::info_span!("other", n = 3, s = "x").in_scope(|| tracing::info!("elsewhere"));
        })
    }

    /// The lines `body` logs, as the subscriber of `json` writes them.
    fn logged(json: bool, body: impl FnOnce()) -> Vec<String> {
        let out = Capture::default();
        let writer = out.clone();
        let make = move || writer.clone();
        let dispatch = if json {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .fmt_fields(RequestFieldsFirst::json())
                .with_writer(make);
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
        } else {
            let layer = tracing_subscriber::fmt::layer()
                .fmt_fields(RequestFieldsFirst::text())
                .with_ansi(false)
                .with_writer(make);
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
        };
        tracing::dispatcher::with_default(&dispatch, || {
            learn_request_span();
            body();
        });
        out.text().lines().map(str::to_owned).collect()
    }

    #[test]
    fn request_span_fields_are_written_directly_and_others_as_before() {
        let text = log_lines(false);
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].contains("request{method=PUT path=/v1/packs/a\"b\\c request_id=req-7\t}: ")
                && text[0].ends_with("published pack=\"p\""),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("other{n=3 s=\"x\"}: ") && text[1].ends_with("elsewhere"),
            "{}",
            text[1]
        );

        let json: Vec<serde_json::Value> = log_lines(true)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert_eq!(json.len(), 2, "{json:?}");
        let span = &json[0]["span"];
        assert_eq!(
            (&span["name"], &span["method"], &span["path"], &span["request_id"]),
            (
                &"request".into(),
                &"PUT".into(),
                &"/v1/packs/a\"b\\c".into(),
                &"req-7\t".into()
            ),
            "{}",
            json[0]
        );
        assert_eq!(
            (&json[0]["message"], &json[0]["pack"]),
            (&"published".into(), &"p".into())
        );
        assert_eq!(
            (&json[1]["span"]["n"], &json[1]["span"]["s"]),
            (&3.into(), &"x".into()),
            "{}",
            json[1]
        );
    }

    #[test]
    fn target_directives_become_a_static_filter() {
        let LogFilter::Targets(t) = LogFilter::parse("warn,banter_registry=debug") else {
            panic!("expected a static filter");
        };
        assert!(t.would_enable("banter_registry::api", &Level::DEBUG));
        assert!(!t.would_enable("banter_registry::api", &Level::TRACE));
        assert!(!t.would_enable("hyper", &Level::INFO));
        assert!(t.would_enable("hyper", &Level::WARN));
        let LogFilter::Targets(t) = LogFilter::parse("info") else {
            panic!("expected a static filter");
        };
        assert_eq!(t.default_level(), Some(LevelFilter::INFO));
    }

    #[test]
    fn span_directives_keep_the_env_filter_and_nonsense_falls_back_to_info() {
        assert!(matches!(LogFilter::parse("[request]=debug"), LogFilter::Env(_)));
        assert!(matches!(
            LogFilter::parse("banter_registry[request{path}]=trace"),
            LogFilter::Env(_)
        ));
        let LogFilter::Env(e) = LogFilter::parse("=][=") else {
            panic!("expected the fallback");
        };
        assert_eq!(e.max_level_hint(), Some(LevelFilter::INFO));
    }

    #[test]
    fn fields_recorded_later_join_the_span() {
        let body = || {
            let span = tracing::info_span!("later", n = 3, extra = tracing::field::Empty);
            span.record("extra", "x");
            span.in_scope(|| tracing::info!("recorded"));
        };
        let text = logged(false, body);
        assert!(text[0].contains("later{n=3 extra=\"x\"}: "), "{}", text[0]);
        let json: serde_json::Value = serde_json::from_str(&logged(true, body)[0]).expect("JSON");
        assert_eq!(
            (&json["span"]["n"], &json["span"]["extra"]),
            (&3.into(), &"x".into()),
            "{json}"
        );
    }
}
