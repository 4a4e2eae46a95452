//! The body parser: one JSON object, or several concatenated ones, into [`Hardware`].

use serde_json::{Map, Value};

use crate::error::Error;
use crate::ghw::Hardware;

/// A parsed introspection body: the typed model and the merged JSON as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The typed, tolerant model.
    pub hardware: Hardware,
    /// The top-level objects merged into one, kept verbatim for the inventory.
    pub raw: Map<String, Value>,
}

/// Parses what the installer POSTs.
///
/// Accepts one JSON object (modern `ghwc -f json`) or several objects one after another, as
/// produced by concatenating `ghwc block -f json`, `ghwc cpu -f json`, ... (each wraps its part
/// in one key). Later keys win when parts repeat a key.
///
/// # Errors
/// [`Error::Empty`], [`Error::Syntax`] (with the path reached and line/column),
/// [`Error::NotAnObject`], or [`Error::Field`] naming the field whose value has the wrong shape.
pub fn parse(body: &[u8]) -> Result<Parsed, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Empty);
    }
    let mut raw = Map::new();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let mut index = 0;
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(Value::Object(part))) => raw.extend(part),
            Some(Ok(_)) => return Err(Error::NotAnObject { index }),
            Some(Err(e)) => return Err(syntax(body, start, &e)),
        }
        index += 1;
    }
    let hardware =
        serde_path_to_error::deserialize(Value::Object(raw.clone())).map_err(|e| Error::Field {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    Ok(Parsed { hardware, raw })
}

/// Re-reads the failing value with path tracking, so the error can say where it broke.
fn syntax(body: &[u8], start: usize, e: &serde_json::Error) -> Error {
    let rest = body.get(start..).unwrap_or_default();
    let mut de = serde_json::Deserializer::from_slice(rest);
    let path = match serde_path_to_error::deserialize::<_, Value>(&mut de) {
        // `?` stands for a map key not read yet; it says nothing to the reader.
        Err(pe) => pe.path().to_string().trim_end_matches(".?").to_owned(),
        Ok(_) => ".".to_owned(),
    };
    let mut message = e.to_string();
    // serde_json appends " at line L column C"; we carry those as fields.
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    Error::Syntax {
        path,
        line: e.line(),
        column: e.column(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `body` and returns the error's display, or "ok".
    fn check(body: &str, expected: &str) {
        let got = match parse(body.as_bytes()) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "body {body:?}");
    }

    #[test]
    fn bodies() {
        check("{}", "ok");
        check("  \n", "empty body: expected ghw JSON");
        check(r#"{"block":{}}{"cpu":{}}"#, "ok");
        check("{\"block\":{}}\n{\"cpu\":{}}\n", "ok");
        check("[1]", "top-level value 0 is not a JSON object");
        check("{} 3", "top-level value 1 is not a JSON object");
        check(
            r#"{"block":{"disks":[{"size_bytes":"big"}]}}"#,
            "invalid field block.disks[0].size_bytes: invalid value: string \"big\", \
             expected a non-negative integer, a numeric string or null",
        );
        check(
            r#"{"network":{"nics":{"a":1}}}"#,
            "invalid field network.nics: invalid type: map, expected a sequence",
        );
        check(
            r#"{"block":{"disks":[{"name":"sda",}]}}"#,
            "malformed JSON at block.disks[0] (line 1, column 34): trailing comma",
        );
        check(
            r#"{"cpu":{}}{"memory":{"total_physical_bytes":1"#,
            "malformed JSON at memory (line 1, column 45): \
             EOF while parsing an object",
        );
        // Placeholders and odd number forms are tolerated.
        check(
            r#"{"memory":{"total_physical_bytes":-1,"total_usable_bytes":"1024",
                "supported_page_sizes":null,"modules":null},
               "block":{"disks":[{"name":"unknown","removable":"","drive_type":null,
                "size_bytes":1.0e3,"partitions":null}]},
               "network":{"nics":[{"mac_address":null,"is_virtual":"false"}]},
               "pci":{"Devices":null},"gpu":{"cards":null},"future":{"x":[1]}}"#,
            "ok",
        );
    }

    #[test]
    fn net_alias_and_later_keys_win() {
        let p = parse(
            br#"{"net":{"nics":[{"name":"a"}]}}{"memory":{"total_usable_bytes":1}}{"memory":{"total_usable_bytes":2}}"#,
        )
        .unwrap();
        assert_eq!(
            p.hardware.network.unwrap().nics[0].name.as_deref(),
            Some("a")
        );
        assert_eq!(p.hardware.memory.unwrap().total_usable_bytes, Some(2));
    }
}
