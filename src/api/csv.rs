//! CSV as spreadsheets read it: RFC 4180 (comma, CRLF, fields quoted when they hold a comma, quote
//! or line break, quotes doubled), with every cell that a spreadsheet would run as a formula (one
//! starting with `=`, `+`, `-`, `@`, a tab or a carriage return) prefixed with `'`, as OWASP advises
//! against CSV injection. Exports stream rows through `row`, a page at a time.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use crate::store::StoreError;

/// A CSV download named `filename`: the `header` row, then page after page as the client reads
/// them. `next(cursor)` renders one page of rows and returns the cursor of the page after it, or
/// `None` after the last; only one page is in memory at a time. A database error ends the body
/// early (the client sees a truncated download, and the error is logged).
pub fn download<C, F, Fut>(filename: &'static str, header_row: &[&str], first: C, next: F) -> Response
where
    C: Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(Vec<u8>, Option<C>), StoreError>> + Send + 'static,
{
    let mut head = Vec::new();
    row(&mut head, header_row.iter().copied());
    let next = Arc::new(next);
    let pages = futures_util::stream::unfold(Some(first), move |cursor| {
        let next = next.clone();
        async move {
            match next(cursor?).await {
                Ok((rows, after)) => Some((Ok(Bytes::from(rows)), after)),
                Err(error) => {
                    tracing::error!(%error, filename, "export stopped");
                    Some((Err(std::io::Error::other("the export stopped: database error")), None))
                }
            }
        }
    });
    let body = futures_util::stream::once(async move { Ok(Bytes::from(head)) }).chain(pages);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8; header=present"));
    let disposition = format!("attachment; filename=\"{filename}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// A time as exports write it: RFC 3339, UTC, milliseconds.
pub fn time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

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
