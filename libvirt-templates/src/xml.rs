//! Rendering and parsing through quick-xml's serde support, and the small shared value types.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// A libvirt `yes`/`no` attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum YesNo {
    /// `yes`
    Yes,
    /// `no`
    No,
}

/// A libvirt `on`/`off` attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    /// `on`
    On,
    /// `off`
    Off,
}

/// A parsed document together with what the model could not represent.
///
/// libvirt's schemas are far larger than this crate's model; a document using more than the
/// model is still read, and the parts left behind are named here so a caller can refuse to
/// rewrite it (rendering the value would drop them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The parsed document.
    pub value: T,
    /// Paths of elements and attributes (`@name`) that were skipped, e.g. `devices.controller`
    /// or `ip.0.dhcp.option` (list items are numbered).
    pub ignored: Vec<String>,
}

pub(crate) fn render<T: Serialize>(root: &'static str, value: &T) -> Result<String, Error> {
    let mut out = String::new();
    let mut ser = quick_xml::se::Serializer::with_root(&mut out, Some(root))
        .map_err(|source| Error::Render { root, source })?;
    ser.indent(' ', 2);
    value
        .serialize(ser)
        .map_err(|source| Error::Render { root, source })?;
    out.push('\n');
    Ok(out)
}

pub(crate) fn parse<T: DeserializeOwned>(
    root: &'static str,
    xml: &str,
) -> Result<Parsed<T>, Error> {
    let found = root_name(xml).map_err(|message| Error::Parse { root, message })?;
    if found != root {
        return Err(Error::WrongRoot {
            expected: root,
            found,
        });
    }
    let mut ignored = Vec::new();
    let mut de = quick_xml::de::Deserializer::from_str(xml);
    let value = serde_ignored::deserialize(&mut de, |path| {
        // serde_ignored marks `Option` layers with `?`; they mean nothing to a reader.
        let path = path
            .to_string()
            .split('.')
            .filter(|part| *part != "?")
            .collect::<Vec<_>>()
            .join(".");
        // Whitespace-only text between child elements is not content.
        if !path.ends_with("$text") && !path.ends_with("$value") && !ignored.contains(&path) {
            ignored.push(path);
        }
    })
    .map_err(|e| Error::Parse {
        root,
        message: e.to_string(),
    })?;
    Ok(Parsed { value, ignored })
}

/// The local name of the document's root element.
fn root_name(xml: &str) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) | Event::Empty(e) => {
                return Ok(e.local_name().into_inner().to_owned());
            }
            Event::Eof => return Err("no root element".to_owned()),
            _ => {}
        }
    }
}
