//! Rewriting values of a YAML file in place, for `gatehouse drift adopt`: only the bytes of the value
//! that changes are replaced (or one key or list item added), so comments, order and formatting of
//! everything else stay as written and a `git diff` shows exactly the adopted lines.
//!
//! Every edit is found through `position` (field path → where it is written) and checked by parsing
//! the result again: the document must read as before except for the one value. What cannot be
//! written in place safely is refused with `ByHand`, whose message says what to write where.

use serde_json::{Map, Value};

use super::position::{Node, NodeKind, Position, PositionIndex, ScalarStyle};

/// A change that cannot be made in place; the message says what to change by hand, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ByHand(pub String);

type Result<T> = std::result::Result<T, ByHand>;

/// `text` with the value at `path` of document `document` changed from `applied` (what the file
/// declares) to `live`. Mappings are changed key by key and lists of the same length item by item,
/// so only what differs is touched; a key the file does not write yet is added to its mapping; a
/// key whose live value is null is removed.
pub fn set(text: &str, document: usize, path: &str, applied: &Value, live: &Value) -> Result<String> {
    if applied == live {
        return Ok(text.to_owned());
    }
    let index = PositionIndex::build(text);
    let Some(node) = index.node(document, path).cloned() else {
        if live.is_null() {
            return Ok(text.to_owned()); // not written, and nothing to write
        }
        return add_key(text, &index, document, path, live);
    };
    let flow = is_flow(text, &node);
    match (&node.kind, applied, live) {
        (NodeKind::Mapping { keys, .. }, Value::Object(before), Value::Object(after)) => {
            // The file's keys in its order, then keys it does not write (added in that order).
            let names = unique(keys.iter().chain(before.keys()).chain(after.keys()).map(String::as_str).collect());
            let mut text = text.to_owned();
            for name in names {
                let (b, a) = (before.get(name).unwrap_or(&Value::Null), after.get(name).unwrap_or(&Value::Null));
                text = set(&text, document, &format!("{path}.{name}"), b, a)?;
            }
            Ok(text)
        }
        (NodeKind::Sequence { items, .. }, Value::Array(before), Value::Array(after))
            if !flow && *items == before.len() && before.len() == after.len() =>
        {
            let mut text = text.to_owned();
            for (i, (b, a)) in before.iter().zip(after).enumerate() {
                text = set(&text, document, &format!("{path}[{i}]"), b, a)?;
            }
            Ok(text)
        }
        (_, _, Value::Null) => remove_key(text, &index, document, path),
        (NodeKind::Scalar { style, .. }, _, _) => replace(text, &index, document, path, &node, *style, live),
        _ if flow => replace(text, &index, document, path, &node, ScalarStyle::Plain, live),
        _ => Err(ByHand(format!(
            "line {}: set `{path}` to {} by hand (it is written as a block that cannot be replaced in place)",
            index.key(document, path).map_or(node.start.line, |k| k.line),
            render(live, ScalarStyle::Plain, true)
        ))),
    }
}

/// Replaces a scalar or a flow collection with `live`, written in `style` if it is a string.
fn replace(
    text: &str,
    index: &PositionIndex,
    document: usize,
    path: &str,
    node: &Node,
    style: ScalarStyle,
    live: &Value,
) -> Result<String> {
    let (start, end) = span(text, index, document, path, node)
        .map_err(|e| ByHand(format!("{e}: set it to {} by hand", render(live, ScalarStyle::Plain, true))))?;
    let written = render(live, style, in_flow(text, index, document, path));
    let edited = format!("{}{written}{}", &text[..start], &text[end..]);
    verify(text, &edited, document, path, live)?;
    Ok(edited)
}

fn unique(names: Vec<&str>) -> Vec<&str> {
    let mut seen = Vec::with_capacity(names.len());
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen
}

/// `text` with `item` appended to the list at `path`, written in the style of the list's last item
/// (a one-line flow mapping `- { a: 1, b: 2 }`, or a block mapping `- a: 1` with its keys below).
pub fn add_item(text: &str, document: usize, path: &str, item: &[(String, Value)]) -> Result<String> {
    let index = PositionIndex::build(text);
    let flow_line = render_mapping(item, true);
    let by_hand = |why: &str| {
        let at = index.locate(document, path).map_or(0, |p| p.line);
        ByHand(format!("add `- {flow_line}` to the list `{path}` (line {at}) by hand: {why}"))
    };
    let list = index.node(document, path).cloned().ok_or_else(|| by_hand("the file has no such list"))?;
    let NodeKind::Sequence { items, .. } = &list.kind else { return Err(by_hand("it is not a list")) };
    let items = *items;
    if is_flow(text, &list) || items == 0 {
        return Err(by_hand("the list is written inline or empty"));
    }
    let last_path = format!("{path}[{}]", items - 1);
    let last = index.node(document, &last_path).cloned().ok_or_else(|| by_hand("its last item is not found"))?;
    let NodeKind::Mapping { keys, end } = &last.kind else { return Err(by_hand("its items are not mappings")) };
    // The sibling's key order, then the item's other keys.
    let mut ordered: Vec<(String, Value)> =
        keys.iter().filter_map(|k| item.iter().find(|(name, _)| name == k).cloned()).collect();
    ordered.extend(item.iter().filter(|(name, _)| !keys.contains(name)).cloned());
    // A flow item starts at its `{`; a block mapping is where its first key is written.
    let first = if is_flow(text, &last) {
        Some(last.start)
    } else {
        keys.first().and_then(|k| index.key(document, &format!("{last_path}.{k}")))
    };
    let first = first.ok_or_else(|| by_hand("its last item is empty"))?;
    let line_start = offset(text, Position { line: first.line, column: 1 });
    let start = offset(text, first);
    let prefix = &text[line_start..start];
    let nl = newline(text);
    let written = if is_flow(text, &last) {
        if end.line != last.start.line || prefix.trim() != "-" {
            return Err(by_hand("its last item does not fit on one line of its own"));
        }
        let spaced = text[start..].starts_with("{ ");
        let mut line = render_mapping(&ordered, spaced);
        line.insert_str(0, prefix);
        line + nl
    } else {
        if prefix.trim() != "-" {
            return Err(by_hand("its last item does not start its line with `- `"));
        }
        let indent = " ".repeat(prefix.chars().count());
        let mut lines = String::new();
        for (i, (key, value)) in ordered.iter().enumerate() {
            let lead = if i == 0 { prefix } else { indent.as_str() };
            lines.push_str(&format!("{lead}{}: {}{nl}", render_key(key), render(value, ScalarStyle::Plain, false)));
        }
        lines
    };
    let after =
        last_line(text, &index, document, &last_path).ok_or_else(|| by_hand("its last item ends in a block"))?;
    let at = line_offset(text, after + 1);
    let mut edited = text.to_owned();
    if at == text.len() && !text.ends_with('\n') {
        edited.push_str(nl);
    }
    edited.insert_str(at.min(edited.len()), &written);
    let expected = Value::Object(item.iter().cloned().collect::<Map<String, Value>>());
    let appended = |want: &mut Value| slot(want, path)?.as_array_mut().map(|list| list.push(expected.clone()));
    check(text, &edited, document, path, &expected, appended)?;
    Ok(edited)
}

/// `text` without item `item` of the block list at `path`: the lines it is written on, from its
/// `- ` to its last line, so its siblings stay as written.
pub fn remove_item(text: &str, document: usize, path: &str, item: usize) -> Result<String> {
    let index = PositionIndex::build(text);
    let item_path = format!("{path}[{item}]");
    let at = index.locate(document, &item_path).map_or(0, |p| p.line);
    let by_hand = |why: &str| ByHand(format!("line {at}: remove the item of `{path}` written there by hand ({why})"));
    let list = index.node(document, path).cloned().ok_or_else(|| by_hand("the file has no such list"))?;
    if is_flow(text, &list) {
        return Err(by_hand("the list is written inline"));
    }
    let node = index.node(document, &item_path).cloned().ok_or_else(|| by_hand("no such item"))?;
    let first = match &node.kind {
        NodeKind::Mapping { keys, .. } if !is_flow(text, &node) => {
            keys.first().and_then(|k| index.key(document, &format!("{item_path}.{k}")))
        }
        _ => Some(node.start),
    }
    .ok_or_else(|| by_hand("the item is empty"))?;
    let line_start = line_offset(text, first.line);
    if text[line_start..offset(text, first)].trim() != "-" {
        return Err(by_hand("it does not start its line with `- `"));
    }
    let last = last_line(text, &index, document, &item_path).ok_or_else(|| by_hand("it ends in a block"))?;
    let mut edited = text.to_owned();
    edited.replace_range(line_start..line_offset(text, last + 1), "");
    let removed = |want: &mut Value| {
        let list = slot(want, path)?.as_array_mut()?;
        (item < list.len()).then(|| drop(list.remove(item)))
    };
    check(text, &edited, document, path, &Value::Null, removed)?;
    Ok(edited)
}

/// The value at `path` (`spec.users[2].role`) of document `document`, `None` where nothing is written.
pub fn value_at(text: &str, document: usize, path: &str) -> Option<Value> {
    let mut value = read(text, document).ok()?;
    slot(&mut value, path).map(std::mem::take).filter(|v| !v.is_null())
}

/// Adds `key: value` (the last segment of `path`) to the mapping that holds it.
fn add_key(text: &str, index: &PositionIndex, document: usize, path: &str, value: &Value) -> Result<String> {
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) if !key.contains('[') => (parent, key),
        _ => return Err(ByHand(format!("write `{path}: {}` by hand", render(value, ScalarStyle::Plain, true)))),
    };
    let entry = format!("{}: {}", render_key(key), render(value, ScalarStyle::Plain, true));
    let by_hand = |why: &str| {
        let at = index.locate(document, parent).map_or(0, |p| p.line);
        ByHand(format!("add `{entry}` to `{parent}` (line {at}) by hand: {why}"))
    };
    let Some(node) = index.node(document, parent).cloned() else { return Err(by_hand("it is not written")) };
    let NodeKind::Mapping { keys, end } = &node.kind else { return Err(by_hand("it is not a mapping")) };
    let mut edited = text.to_owned();
    if is_flow(text, &node) {
        let close = offset(text, *end);
        let before = text[..close].trim_end();
        let at = before.len();
        if before.ends_with('{') {
            edited.replace_range(at..close, &format!(" {entry} "));
        } else {
            edited.insert_str(at, &format!(", {entry}"));
        }
    } else {
        let first = keys.first().and_then(|k| index.key(document, &format!("{parent}.{k}")));
        let Some(first) = first else { return Err(by_hand("it has no key to align with")) };
        let after = last_line(text, index, document, parent).ok_or_else(|| by_hand("it ends in a block"))?;
        let nl = newline(text);
        let at = line_offset(text, after + 1);
        let line = format!(
            "{}{}: {}{nl}",
            " ".repeat(first.column - 1),
            render_key(key),
            render(value, ScalarStyle::Plain, false)
        );
        if at == text.len() && !text.ends_with('\n') {
            edited.push_str(nl);
        }
        edited.insert_str(at.min(edited.len()), &line);
    }
    verify(text, &edited, document, path, value)?;
    Ok(edited)
}

/// Removes the key of `path` and its value: from a flow mapping with the comma that separates it, from
/// a block mapping with its line when key and value (and a comment) are all that line holds.
fn remove_key(text: &str, index: &PositionIndex, document: usize, path: &str) -> Result<String> {
    let by_hand = |line: usize| ByHand(format!("line {line}: remove `{path}` by hand"));
    let node = index.node(document, path).cloned().ok_or_else(|| by_hand(0))?;
    let key = index.key(document, path).ok_or_else(|| by_hand(node.start.line))?;
    let parent = index.node(document, path.rsplit_once('.').map_or("", |(p, _)| p)).cloned();
    let (_, value_end) = span(text, index, document, path, &node).map_err(|_| by_hand(key.line))?;
    let key_start = offset(text, key);
    let mut edited = text.to_owned();
    if parent.as_ref().is_some_and(|p| is_flow(text, p)) {
        let before = text[..key_start].trim_end();
        if let Some(comma) = before.strip_suffix(',') {
            edited.replace_range(comma.len()..value_end, "");
        } else {
            let rest = &text[value_end..];
            let trimmed = rest.trim_start();
            let skip = match trimmed.strip_prefix(',') {
                Some(after) => rest.len() - after.trim_start().len(),
                None => 0,
            };
            edited.replace_range(key_start..value_end + skip, "");
        }
    } else {
        let line_start = line_offset(text, key.line);
        let line_end = line_offset(text, key.line + 1);
        // The line goes with a comment that ends it: it spoke of the value removed.
        let rest = text[value_end..line_end].trim();
        let whole = text[line_start..key_start].trim().is_empty() && (rest.is_empty() || rest.starts_with('#'));
        if !whole || node.start.line != key.line {
            return Err(by_hand(key.line));
        }
        edited.replace_range(line_start..line_end, "");
    }
    verify(text, &edited, document, path, &Value::Null)?;
    Ok(edited)
}

/// Byte range of the value node at `path`: a scalar as written (quotes included), or a flow
/// collection from its opening to its closing bracket.
fn span(text: &str, index: &PositionIndex, document: usize, path: &str, node: &Node) -> Result<(usize, usize)> {
    let start = offset(text, node.start);
    let line = index.key(document, path).map_or(node.start.line, |k| k.line);
    let refuse = || ByHand(format!("line {line}: `{path}` cannot be replaced in place"));
    match &node.kind {
        NodeKind::Scalar { style, value } => {
            let rest = &text[start..];
            let len = match style {
                ScalarStyle::DoubleQuoted => quoted_len(rest, '"'),
                ScalarStyle::SingleQuoted => quoted_len(rest, '\''),
                ScalarStyle::Plain => {
                    let flow = in_flow(text, index, document, path);
                    let len = plain_len(rest, flow);
                    // A plain scalar folded over several lines reads differently from its text.
                    (&rest[..len] == value.as_str()).then_some(len)
                }
                ScalarStyle::Block => None,
            };
            len.map(|len| (start, start + len)).ok_or_else(refuse)
        }
        NodeKind::Mapping { end, .. } | NodeKind::Sequence { end, .. } if is_flow(text, node) => {
            let close = offset(text, *end);
            let closing = text[close..].chars().next().filter(|c| matches!(c, '}' | ']')).ok_or_else(refuse)?;
            Ok((start, close + closing.len_utf8()))
        }
        _ => Err(refuse()),
    }
}

/// Length of a quoted scalar at the start of `rest`, quotes included.
fn quoted_len(rest: &str, quote: char) -> Option<usize> {
    let mut chars = rest.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if quote == '"' => {
                chars.next();
            }
            c if c == quote => {
                if quote == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                } else {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Length of a plain scalar at the start of `rest`: up to the end of the line, a comment, or (inside
/// a flow collection) the next `,`, `]` or `}`.
fn plain_len(rest: &str, flow: bool) -> usize {
    let line = &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())];
    let mut end = line.len();
    let bytes = line.as_bytes();
    for (i, c) in line.char_indices() {
        let after_space = i > 0 && matches!(bytes[i - 1], b' ' | b'\t');
        let next_blank = line[i + c.len_utf8()..].chars().next().is_none_or(|n| n == ' ' || n == '\t');
        if (c == '#' && after_space)
            || (flow && matches!(c, ',' | ']' | '}'))
            || (c == ':' && next_blank && (flow || i > 0))
        {
            end = i;
            break;
        }
    }
    line[..end].trim_end().len()
}

/// Whether a collection node is written in flow style (`{…}` or `[…]`).
fn is_flow(text: &str, node: &Node) -> bool {
    matches!(node.kind, NodeKind::Mapping { .. } | NodeKind::Sequence { .. })
        && matches!(text[offset(text, node.start)..].chars().next(), Some('{' | '['))
}

/// Whether the node at `path` sits inside a flow collection.
fn in_flow(text: &str, index: &PositionIndex, document: usize, path: &str) -> bool {
    let mut path = path;
    while let Some(i) = path.rfind(['.', '[']) {
        path = &path[..i];
        if index.node(document, path).is_some_and(|n| is_flow(text, n)) {
            return true;
        }
    }
    false
}

/// The last line the node at `path` is written on; `None` when it ends in a block scalar.
fn last_line(text: &str, index: &PositionIndex, document: usize, path: &str) -> Option<usize> {
    let node = index.node(document, path)?;
    match &node.kind {
        NodeKind::Scalar { style: ScalarStyle::Block, .. } => None,
        NodeKind::Scalar { style: ScalarStyle::Plain, value } => {
            let start = offset(text, node.start);
            (text[start..start + plain_len(&text[start..], false)] == *value || in_flow(text, index, document, path))
                .then_some(node.start.line)
        }
        NodeKind::Scalar { value, .. } => Some(node.start.line + value.matches('\n').count()),
        NodeKind::Alias => Some(node.start.line),
        NodeKind::Mapping { end, .. } | NodeKind::Sequence { end, .. } if is_flow(text, node) => Some(end.line),
        NodeKind::Mapping { keys, .. } => {
            let mut last = node.start.line;
            for key in keys {
                last = last.max(last_line(text, index, document, &format!("{path}.{key}"))?);
            }
            Some(last)
        }
        NodeKind::Sequence { items, .. } => {
            let mut last = node.start.line;
            for i in 0..*items {
                last = last.max(last_line(text, index, document, &format!("{path}[{i}]"))?);
            }
            Some(last)
        }
    }
}

/// Checks an edit: `after` must read as `before` with the value at `path` set to `expected` (removed
/// when it is null), and nothing else changed.
fn verify(before: &str, after: &str, document: usize, path: &str, expected: &Value) -> Result<()> {
    let setting = |want: &mut Value| {
        if expected.is_null() {
            let (parent, key) = path.rsplit_once('.')?;
            slot(want, parent)?.as_object_mut()?.remove(key).map(drop)
        } else {
            *slot(want, path)? = expected.clone();
            Some(())
        }
    };
    check(before, after, document, path, expected, setting)
}

/// `after` must read as `before` changed by `change`, and as nothing else.
fn check(
    before: &str,
    after: &str,
    document: usize,
    path: &str,
    expected: &Value,
    change: impl FnOnce(&mut Value) -> Option<()>,
) -> Result<()> {
    let failed = |why: &str| {
        ByHand(format!(
            "`{path}` could not be written in place ({why}); set it to {} by hand",
            render(expected, ScalarStyle::Plain, true)
        ))
    };
    let mut want = read(before, document).map_err(|e| failed(&e))?;
    change(&mut want).ok_or_else(|| failed("no such place in the file"))?;
    let got = read(after, document).map_err(|e| failed(&e))?;
    if got == want { Ok(()) } else { Err(failed("the file would read differently")) }
}

/// Document `document` of `text` as JSON.
fn read(text: &str, document: usize) -> std::result::Result<Value, String> {
    let doc = serde_yaml::Deserializer::from_str(text).nth(document).ok_or("no such document")?;
    let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).map_err(|e| e.to_string())?;
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// The value at `path` (`a.b[2].c`), created as null in its mapping when missing.
fn slot<'a>(mut value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    for segment in path.split('.') {
        let (key, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            value = value.as_object_mut()?.entry(key.to_owned()).or_insert(Value::Null);
        }
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            value = value.as_array_mut()?.get_mut(index.parse::<usize>().ok()?)?;
        }
    }
    Some(value)
}

/// Byte offset of a 1-based line and column.
fn offset(text: &str, at: Position) -> usize {
    let start = line_offset(text, at.line);
    let line = &text[start..];
    line.char_indices().nth(at.column.saturating_sub(1)).map_or(text.len(), |(i, _)| start + i)
}

/// Byte offset where 1-based `line` starts (the end of the text past the last line).
fn line_offset(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n').nth(line - 2).map_or(text.len(), |(i, _)| i + 1)
}

fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// A JSON value as YAML: scalars plain when YAML reads them back as the same value, quoted
/// otherwise (keeping the quotes `style` the old value had); lists and mappings in flow style.
pub fn render(value: &Value, style: ScalarStyle, flow: bool) -> String {
    match value {
        Value::String(s) => render_string(s, style, flow),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| render(v, ScalarStyle::Plain, true)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<(String, Value)> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            render_mapping(&entries, true)
        }
        other => other.to_string(),
    }
}

fn render_mapping(entries: &[(String, Value)], spaced: bool) -> String {
    if entries.is_empty() {
        return "{}".into();
    }
    let inner: Vec<String> =
        entries.iter().map(|(k, v)| format!("{}: {}", render_key(k), render(v, ScalarStyle::Plain, true))).collect();
    if spaced { format!("{{ {} }}", inner.join(", ")) } else { format!("{{{}}}", inner.join(", ")) }
}

fn render_key(key: &str) -> String {
    render_string(key, ScalarStyle::Plain, true)
}

fn render_string(s: &str, style: ScalarStyle, flow: bool) -> String {
    let printable = !s.chars().any(char::is_control);
    match style {
        ScalarStyle::SingleQuoted if printable => format!("'{}'", s.replace('\'', "''")),
        ScalarStyle::Plain if plain_safe(s, flow) => s.to_owned(),
        _ => double_quoted(s),
    }
}

/// JSON's string escapes are YAML double-quoted escapes too.
fn double_quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

/// Whether `s` can be written unquoted and reads back as the same string.
fn plain_safe(s: &str, flow: bool) -> bool {
    const INDICATORS: &[char] =
        &['-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`'];
    // Words other YAML 1.1 readers (editors, older tools) take for booleans.
    const WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"];
    let structural = s.is_empty()
        || s.trim() != s
        || s.starts_with(INDICATORS)
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.chars().any(char::is_control)
        || (flow && s.contains([',', '[', ']', '{', '}']))
        || WORDS.contains(&s.to_ascii_lowercase().as_str());
    !structural
        && matches!(serde_yaml::from_str::<serde_yaml::Value>(s), Ok(serde_yaml::Value::String(read)) if read == s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TENANT: &str = "\
# Acme: the first customer.
apiVersion: gatehouse.dev/v1
kind: Tenant
metadata:
  name: acme
spec:
  displayName: Acme Corp   # shown in the console
  plan: pro
  sync: { selfHeal: true, prune: true }
  users:
    - { email: alice@acme.example, name: Alice Archer, role: owner }
    - { email: carol@acme.example, role: admin }
    - email: dan@acme.example
      role: user
  flags:
    max_projects: 1000
    support_tier: \"priority\"
    dashboard: { theme: dark, widgets: [usage, billing] }
";

    /// The lines of `after` that differ from `before`, as (line number, new text).
    fn changed_lines(before: &str, after: &str) -> Vec<(usize, String)> {
        let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
        assert_eq!(a.len(), b.len(), "the number of lines changed:\n{after}");
        a.iter().zip(&b).enumerate().filter(|(_, (x, y))| x != y).map(|(i, (_, y))| (i + 1, (*y).to_owned())).collect()
    }

    #[test]
    fn a_value_in_a_flow_mapping_is_replaced_and_nothing_else() {
        let after = set(TENANT, 0, "spec.users[1].role", &json!("admin"), &json!("user")).expect("in place");
        assert_eq!(changed_lines(TENANT, &after), [(12, "    - { email: carol@acme.example, role: user }".to_owned())]);
    }

    #[test]
    fn a_block_value_keeps_its_comment_and_a_quoted_one_its_quotes() {
        let after = set(TENANT, 0, "spec.displayName", &json!("Acme Corp"), &json!("Acme Inc")).expect("in place");
        assert_eq!(changed_lines(TENANT, &after), [(7, "  displayName: Acme Inc   # shown in the console".to_owned())]);
        let after = set(TENANT, 0, "spec.flags.support_tier", &json!("priority"), &json!("basic")).expect("in place");
        assert_eq!(changed_lines(TENANT, &after), [(17, "    support_tier: \"basic\"".to_owned())]);
        let after = set(TENANT, 0, "spec.users[2].role", &json!("user"), &json!("owner")).expect("block item");
        assert_eq!(changed_lines(TENANT, &after), [(14, "      role: owner".to_owned())]);
    }

    #[test]
    fn values_yaml_would_read_as_something_else_are_quoted() {
        for (live, written) in [
            (json!("yes"), "\"yes\""),
            (json!("123"), "\"123\""),
            (json!("- item"), "\"- item\""),
            (json!("#1"), "\"#1\""),
            (json!("x: y"), "\"x: y\""),
            (json!(""), "\"\""),
            (json!("line\nbreak"), "\"line\\nbreak\""),
            (json!(7), "7"),
            (json!(2.5), "2.5"),
            (json!(true), "true"),
        ] {
            let after = set(TENANT, 0, "spec.flags.max_projects", &json!(1000), &live).expect("in place");
            assert_eq!(changed_lines(TENANT, &after), [(16, format!("    max_projects: {written}"))], "{live}");
        }
        let after =
            set(TENANT, 0, "spec.users[0].name", &json!("Alice Archer"), &json!("Archer, Alice")).expect("flow");
        assert_eq!(
            changed_lines(TENANT, &after),
            [(11, "    - { email: alice@acme.example, name: \"Archer, Alice\", role: owner }".to_owned())]
        );
    }

    #[test]
    fn a_nested_value_changes_only_the_key_that_differs() {
        let applied = json!({ "theme": "dark", "widgets": ["usage", "billing"] });
        let live = json!({ "theme": "light", "widgets": ["usage", "billing"] });
        let after = set(TENANT, 0, "spec.flags.dashboard", &applied, &live).expect("in place");
        assert_eq!(
            changed_lines(TENANT, &after),
            [(18, "    dashboard: { theme: light, widgets: [usage, billing] }".to_owned())]
        );
        let live = json!({ "theme": "dark", "widgets": ["usage"] });
        let after = set(TENANT, 0, "spec.flags.dashboard", &applied, &live).expect("a flow list is replaced");
        assert_eq!(
            changed_lines(TENANT, &after),
            [(18, "    dashboard: { theme: dark, widgets: [usage] }".to_owned())]
        );
    }

    #[test]
    fn a_key_the_file_does_not_write_is_added_in_the_style_of_its_mapping() {
        let after = set(TENANT, 0, "spec.users[1].status", &json!("active"), &json!("disabled")).expect("flow");
        assert_eq!(
            changed_lines(TENANT, &after),
            [(12, "    - { email: carol@acme.example, role: admin, status: disabled }".to_owned())]
        );
        let after = set(TENANT, 0, "spec.users[2].name", &Value::Null, &json!("Dan")).expect("block");
        assert!(after.contains("      role: user\n      name: Dan\n  flags:"), "{after}");
        let after = set(TENANT, 0, "spec.status", &json!("active"), &json!("suspended")).expect("block");
        assert!(after.ends_with("widgets: [usage, billing] }\n  status: suspended\n"), "{after}");
    }

    #[test]
    fn a_key_whose_live_value_is_null_is_removed() {
        let after = set(TENANT, 0, "spec.users[0].name", &json!("Alice Archer"), &Value::Null).expect("flow");
        assert_eq!(
            changed_lines(TENANT, &after),
            [(11, "    - { email: alice@acme.example, role: owner }".to_owned())]
        );
        let after = set(TENANT, 0, "spec.plan", &json!("pro"), &Value::Null).expect("block line");
        assert!(!after.contains("plan: pro") && after.lines().count() == TENANT.lines().count() - 1);
    }

    #[test]
    fn a_list_item_is_added_in_the_style_of_its_siblings() {
        let item = [("role".to_owned(), json!("user")), ("email".to_owned(), json!("erin@acme.example"))];
        let flow = TENANT.replace("    - email: dan@acme.example\n      role: user\n", "");
        let after = add_item(&flow, 0, "spec.users", &item).expect("flow item");
        assert!(after.contains("role: admin }\n    - { email: erin@acme.example, role: user }\n  flags:"), "{after}");
        let after = add_item(TENANT, 0, "spec.users", &item).expect("block item");
        assert!(
            after.contains("      role: user\n    - email: erin@acme.example\n      role: user\n  flags:"),
            "{after}"
        );
    }

    #[test]
    fn what_cannot_be_written_in_place_is_left_to_do_by_hand_with_the_line_to_write() {
        let text = "kind: Tenant\nmetadata: { name: a }\nspec:\n  displayName: |\n    Acme\n";
        let refused = set(text, 0, "spec.displayName", &json!("Acme\n"), &json!("Other")).expect_err("block scalar");
        assert!(refused.0.contains("line 4") && refused.0.contains("Other"), "{refused}");
        let refused =
            add_item("kind: Tenant\nspec:\n  users: []\n", 0, "spec.users", &[("email".into(), json!("a@b.example"))])
                .expect_err("inline list");
        assert!(refused.0.contains("`- { email: a@b.example }`"), "{refused}");
    }

    #[test]
    fn the_right_document_of_a_multi_document_file_is_changed() {
        let text = "kind: Plan\nmetadata: { name: pro }\nspec: { displayName: Pro }\n---\nkind: Plan\nmetadata: { name: free }\nspec: { displayName: Free }\n";
        let index = PositionIndex::build(text);
        assert_eq!(index.document_of("Plan", "free"), Some(1));
        let after = set(text, 1, "spec.displayName", &json!("Free"), &json!("Gratis")).expect("second document");
        assert_eq!(changed_lines(text, &after), [(7, "spec: { displayName: Gratis }".to_owned())]);
    }
}
