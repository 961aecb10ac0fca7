//! CSV as spreadsheets read it: RFC 4180 (comma, CRLF, fields quoted when they hold a comma, quote
//! or line break, quotes doubled), with every cell that a spreadsheet would run as a formula (one
//! starting with `=`, `+`, `-`, `@`, a tab or a carriage return) prefixed with `'`, as OWASP advises
//! against CSV injection. Exports stream rows through `row`, a page at a time.

/// Appends one record to `out`.
pub fn row<'a>(out: &mut Vec<u8>, cells: impl IntoIterator<Item = &'a str>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        field(out, cell);
    }
    out.extend_from_slice(b"\r\n");
}

fn field(out: &mut Vec<u8>, cell: &str) {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = cell.contains([',', '"', '\r', '\n']);
    if quoted {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    for byte in cell.bytes() {
        if byte == b'"' {
            out.push(b'"');
        }
        out.push(byte);
    }
    if quoted {
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::row;

    fn line(cells: &[&str]) -> String {
        let mut out = Vec::new();
        row(&mut out, cells.iter().copied());
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(line(&["a", "b c", ""]), "a,b c,\r\n");
        assert_eq!(line(&["a,b", "say \"hi\"", "two\nlines"]), "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
    }

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(line(&["=1+1", "+1", "-2", "@SUM(A1)", "a=b"]), "'=1+1,'+1,'-2,'@SUM(A1),a=b\r\n");
        assert_eq!(line(&["=HYPERLINK(\"x\",\"y\")"]), "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"\r\n");
    }
}
