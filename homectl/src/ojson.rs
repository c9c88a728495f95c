//! JSON that keeps the order of object keys, as sd-json does: homectl builds records field by
//! field and prints records in the order the daemon sent them, so `inspect -j` shows exactly
//! what systemd's homectl shows.

/// A JSON value whose objects remember the order of their keys.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum OJson {
    #[default]
    Null,
    Bool(bool),
    /// A number, kept as its JSON text.
    Number(String),
    String(String),
    Array(Vec<OJson>),
    Object(Vec<(String, OJson)>),
}

impl OJson {
    pub fn object() -> OJson {
        OJson::Object(Vec::new())
    }

    pub fn unsigned(n: u64) -> OJson {
        OJson::Number(n.to_string())
    }

    pub fn signed(n: i64) -> OJson {
        OJson::Number(n.to_string())
    }

    pub fn string(s: impl Into<String>) -> OJson {
        OJson::String(s.into())
    }

    pub fn strings<S: AsRef<str>>(items: &[S]) -> OJson {
        OJson::Array(items.iter().map(|s| OJson::string(s.as_ref())).collect())
    }

    /// True for an absent-like value: an object without keys (sd-json's "blank object").
    pub fn is_blank_object(&self) -> bool {
        matches!(self, OJson::Object(e) if e.is_empty()) || matches!(self, OJson::Null)
    }

    pub fn get(&self, key: &str) -> Option<&OJson> {
        match self {
            OJson::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            OJson::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            OJson::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Sets `key` as sd-json does: an existing entry is dropped and the new one goes last. A
    /// value that is not an object becomes an empty object first.
    pub fn set(&mut self, key: &str, value: OJson) {
        if !matches!(self, OJson::Object(_)) {
            *self = OJson::object();
        }
        if let OJson::Object(entries) = self {
            entries.retain(|(k, _)| k != key);
            entries.push((key.to_owned(), value));
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<OJson> {
        match self {
            OJson::Object(entries) => {
                let i = entries.iter().position(|(k, _)| k == key)?;
                Some(entries.remove(i).1)
            }
            _ => None,
        }
    }

    /// Drops every key named in `keys`.
    pub fn filter(&mut self, keys: &[String]) {
        if let OJson::Object(entries) = self {
            entries.retain(|(k, _)| !keys.contains(k));
        }
    }

    /// sd-json's merge: the keys of `self` that `other` lacks, in order, then all of `other`.
    pub fn merge(&mut self, other: &OJson) {
        if let OJson::Object(add) = other {
            if !matches!(self, OJson::Object(_)) {
                *self = OJson::object();
            }
            if let OJson::Object(entries) = self {
                entries.retain(|(k, _)| !add.iter().any(|(a, _)| a == k));
                entries.extend(add.iter().cloned());
            }
        }
    }

    /// Wipes every string and key in place (for values that held secrets).
    pub fn wipe(&mut self) {
        use zeroize::Zeroize as _;
        match self {
            OJson::String(s) | OJson::Number(s) => s.zeroize(),
            OJson::Array(items) => items.iter_mut().for_each(OJson::wipe),
            OJson::Object(entries) => {
                for (k, v) in entries.iter_mut() {
                    k.zeroize();
                    v.wipe();
                }
            }
            OJson::Null | OJson::Bool(_) => {}
        }
    }

    /// Parses JSON text, refusing trailing garbage.
    pub fn parse(text: &str) -> Result<OJson, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            text,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at offset {}", p.i));
        }
        Ok(v)
    }

    /// Compact text (sd-json's flags 0 form).
    pub fn to_compact(&self) -> String {
        self.render(false, false)
    }

    /// Pretty text (tabs, `" : "` separators, no final newline: sd-json's PRETTY form) or
    /// compact text, with sd-json's terminal colors if `color` is set (strings
    /// green, numbers bold blue, `true`/`false`/`null` bold).
    pub fn render(&self, pretty: bool, color: bool) -> String {
        let mut out = String::new();
        self.write(&mut out, Style { pretty, color }, 0);
        out
    }

    fn write(&self, out: &mut String, style: Style, level: usize) {
        let pretty = style.pretty.then_some(());
        const NORMAL: &str = "\x1B[0m";
        let colored = |out: &mut String, code: &str, text: &str| {
            if style.color {
                out.push_str(code);
                out.push_str(text);
                out.push_str(NORMAL);
            } else {
                out.push_str(text);
            }
        };
        let string = |out: &mut String, text: &str| {
            if style.color {
                let mut quoted = String::new();
                write_string(&mut quoted, text);
                let inner = &quoted[1..quoted.len() - 1];
                out.push('"');
                out.push_str("\x1B[0;32m");
                out.push_str(inner);
                out.push_str(NORMAL);
                out.push('"');
            } else {
                write_string(out, text);
            }
        };
        let indent = |out: &mut String, level: usize| {
            for _ in 0..level {
                out.push('\t');
            }
        };
        match self {
            OJson::Null => colored(out, "\x1B[0;1;39m", "null"),
            OJson::Bool(b) => colored(out, "\x1B[0;1;39m", if *b { "true" } else { "false" }),
            OJson::Number(n) => colored(out, "\x1B[0;1;34m", n),
            OJson::String(s) => string(out, s),
            OJson::Array(items) if items.is_empty() => out.push_str("[]"),
            OJson::Object(entries) if entries.is_empty() => out.push_str("{}"),
            OJson::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if pretty.is_some() {
                        out.push('\n');
                        indent(out, level + 1);
                    }
                    item.write(out, style, level + 1);
                }
                if pretty.is_some() {
                    out.push('\n');
                    indent(out, level);
                }
                out.push(']');
            }
            OJson::Object(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if pretty.is_some() {
                        out.push('\n');
                        indent(out, level + 1);
                    }
                    string(out, k);
                    out.push_str(if pretty.is_some() { " : " } else { ":" });
                    v.write(out, style, level + 1);
                }
                if pretty.is_some() {
                    out.push('\n');
                    indent(out, level);
                }
                out.push('}');
            }
        }
    }

    /// Converts to serde_json (key order is lost), for the record checks of the core library.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.to_compact()).unwrap_or(serde_json::Value::Null)
    }
}

pub use homed_shared::json::write_string;

#[derive(Clone, Copy)]
struct Style {
    pretty: bool,
    color: bool,
}

const MAX_DEPTH: usize = 128;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at offset {}", self.i))
    }

    fn value(&mut self, depth: usize) -> Result<OJson, String> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end of input"),
            Some(b'{') => {
                self.i += 1;
                let mut entries = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(OJson::Object(entries));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return self.err("expected a key");
                    }
                    let key = self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return self.err("expected ':'");
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    if entries.iter().any(|(k, _)| *k == key) {
                        return self.err("duplicate key");
                    }
                    entries.push((key, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(OJson::Object(entries));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(OJson::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(OJson::Array(items));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => Ok(OJson::String(self.string()?)),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(OJson::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(OJson::Bool(false))
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(OJson::Null)
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let token = &self.text[start..self.i];
                if serde_json::from_str::<serde_json::Number>(token).is_err() {
                    return self.err("bad number");
                }
                Ok(OJson::Number(token.to_owned()))
            }
            Some(_) => self.err("unexpected character"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.i;
        self.i += 1;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    let token = &self.text[start..self.i.min(self.text.len())];
                    return serde_json::from_str::<String>(token)
                        .map_err(|e| format!("bad string at offset {start}: {e}"));
                }
                _ => self.i += 1,
            }
        }
        self.err("unterminated string")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_formats_like_sd_json() {
        let text = r#"{"b":1,"a":[true,null,"x\ny"],"c":{},"d":[]}"#;
        let v = OJson::parse(text).unwrap();
        assert_eq!(v.to_compact(), text);
        assert_eq!(
            v.render(true, false),
            "{\n\t\"b\" : 1,\n\t\"a\" : [\n\t\ttrue,\n\t\tnull,\n\t\t\"x\\ny\"\n\t],\n\t\"c\" : {},\n\t\"d\" : []\n}"
        );
    }

    #[test]
    fn set_and_merge_move_keys_last() {
        let mut v = OJson::parse(r#"{"a":1,"b":2}"#).unwrap();
        v.set("a", OJson::unsigned(3));
        v.set("c", OJson::Bool(false));
        assert_eq!(v.to_compact(), r#"{"b":2,"a":3,"c":false}"#);
        v.filter(&["b".to_owned()]);
        assert_eq!(v.to_compact(), r#"{"a":3,"c":false}"#);
        v.merge(&OJson::parse(r#"{"a":4,"d":[]}"#).unwrap());
        assert_eq!(v.to_compact(), r#"{"c":false,"a":4,"d":[]}"#);
    }

    #[test]
    fn colors_as_sd_json() {
        let v = OJson::parse(r#"{"a":[1,true,null]}"#).unwrap();
        assert_eq!(
            v.render(false, true),
            "{\"\x1B[0;32ma\x1B[0m\":[\x1B[0;1;34m1\x1B[0m,\x1B[0;1;39mtrue\x1B[0m,\x1B[0;1;39mnull\x1B[0m]}"
        );
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "1 2",
            "{\"a\":1,\"a\":2}",
            "\"\\x\"",
        ] {
            assert!(OJson::parse(bad).is_err(), "{bad}");
        }
    }
}
