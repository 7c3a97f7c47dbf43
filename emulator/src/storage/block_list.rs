//! The body of a Put Block List request (Azure Storage REST "Put Block List"):
//!
//! ```xml
//! <?xml version="1.0" encoding="utf-8"?>
//! <BlockList>
//!   <Latest>AAAAAA==</Latest>
//!   <Uncommitted>AQAAAA==</Uncommitted>
//!   <Committed>AgAAAA==</Committed>
//! </BlockList>
//! ```
//!
//! Block ids are base64, so the only XML this reader needs is an optional declaration, the
//! one root element and its flat children; anything else (attributes aside) is refused rather
//! than guessed at. Written by hand because it is all the XML the emulator reads.

/// Where Put Block List should look for a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockSource {
    Committed,
    Uncommitted,
    /// The uncommitted block if there is one, else the committed one.
    Latest,
}

/// Longest list accepted: Azure's limit on a blob's committed blocks.
pub(crate) const MAX_BLOCKS: usize = 50_000;

/// The blocks a list names, in order; `Err` says what is wrong with the XML.
pub(crate) fn parse(body: &[u8]) -> Result<Vec<(BlockSource, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the block list is not UTF-8".to_owned())?;
    let mut rest = text.trim_start_matches('\u{feff}').trim();
    if let Some(after) = rest.strip_prefix("<?xml") {
        let end = after
            .find("?>")
            .ok_or("the XML declaration is not closed")?;
        rest = after[end + 2..].trim_start();
    }
    let rest = open_tag(rest, "BlockList").ok_or("the body is not a <BlockList>")?;
    let mut rest = rest.trim_start();
    let mut blocks = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix("</BlockList>") {
            if !after.trim().is_empty() {
                return Err("content after </BlockList>".to_owned());
            }
            return Ok(blocks);
        }
        let (source, name) = [
            (BlockSource::Committed, "Committed"),
            (BlockSource::Uncommitted, "Uncommitted"),
            (BlockSource::Latest, "Latest"),
        ]
        .into_iter()
        .find(|(_, name)| rest.starts_with(&format!("<{name}>")))
        .ok_or("expected <Committed>, <Uncommitted>, <Latest> or </BlockList>")?;
        let inner = &rest[name.len() + 2..];
        let close = format!("</{name}>");
        let end = inner
            .find(&close)
            .ok_or_else(|| format!("<{name}> is not closed"))?;
        let id = inner[..end].trim();
        if id.is_empty() || id.contains('<') || id.contains('&') {
            return Err(format!("<{name}> does not hold a block id"));
        }
        if blocks.len() == MAX_BLOCKS {
            return Err(format!("a block list holds at most {MAX_BLOCKS} blocks"));
        }
        blocks.push((source, id.to_owned()));
        rest = inner[end + close.len()..].trim_start();
    }
}

/// The text after `<{name}>` or `<{name} …attributes…>`.
fn open_tag<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let after = text.strip_prefix('<')?.strip_prefix(name)?;
    let end = after.find('>')?;
    let attributes = &after[..end];
    if !(attributes.is_empty() || attributes.starts_with(char::is_whitespace))
        || attributes.ends_with('/')
    {
        return None;
    }
    Some(&after[end + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lists_the_storage_sdks_send() {
        let body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList><Latest>AAAAAA==</Latest><Uncommitted>AQ==</Uncommitted>\r\n  <Committed>Ag==</Committed></BlockList>";
        assert_eq!(
            parse(body).unwrap(),
            vec![
                (BlockSource::Latest, "AAAAAA==".to_owned()),
                (BlockSource::Uncommitted, "AQ==".to_owned()),
                (BlockSource::Committed, "Ag==".to_owned()),
            ]
        );
        assert_eq!(parse(b"<BlockList></BlockList>").unwrap(), vec![]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            &b""[..],
            b"<BlockList>",
            b"<BlockList><Latest>a</Latest>",
            b"<BlockList><Latest></Latest></BlockList>",
            b"<BlockList><Latest>a<b/></Latest></BlockList>",
            b"<BlockList><Other>a</Other></BlockList>",
            b"<BlockList/>",
            b"<BlockListX></BlockListX>",
            b"<BlockList></BlockList><x/>",
            b"<?xml version=\"1.0\"<BlockList></BlockList>",
            b"\xff\xfe",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn caps_the_number_of_blocks() {
        let mut body = String::from("<BlockList>");
        for _ in 0..=MAX_BLOCKS {
            body.push_str("<Latest>AA==</Latest>");
        }
        body.push_str("</BlockList>");
        assert!(parse(body.as_bytes()).unwrap_err().contains("at most"));
    }
}
