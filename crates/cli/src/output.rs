//! Printing answers for humans.

use loanwire_top::Format;

/// The body re-indented; a body that does not parse is printed as received.
pub fn pretty(raw: &str, format: Format) -> String {
    match format {
        Format::Json => serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| raw.to_string()),
        Format::Xml => pretty_xml(raw).unwrap_or_else(|| raw.to_string()),
    }
}

fn pretty_xml(raw: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(raw);
    reader.config_mut().trim_text(true);
    let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    loop {
        match reader.read_event().ok()? {
            Event::Eof => break,
            e => writer.write_event(e).ok()?,
        }
    }
    String::from_utf8(writer.into_inner()).ok()
}

/// Prints a line to stdout, ignoring a closed stdout: a server must not die because whoever
/// started it stopped reading.
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
