//! The pages' static files, embedded in the binary: the stylesheet and htmx (2.0.7, vendored from
//! npm `htmx.org`, BSD Zero Clause licence in `assets/htmx-LICENSE`). Their URLs carry a digest of
//! their content, so a browser may keep them for a year and still gets each new release's.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api::AppState;

pub struct Asset {
    pub name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    version: OnceLock<String>,
}

impl Asset {
    /// The URL pages link to: the name and the content's digest.
    pub fn url(&self) -> String {
        format!("/assets/{}?v={}", self.name, self.version.get_or_init(|| digest(self.bytes)))
    }
}

const fn asset(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
    Asset { name, content_type, bytes, version: OnceLock::new() }
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(bytes)[..6])
}

pub static STYLE: Asset = asset("style.css", "text/css; charset=utf-8", include_bytes!("../../../assets/style.css"));
pub static HTMX: Asset =
    asset("htmx.min.js", "text/javascript; charset=utf-8", include_bytes!("../../../assets/htmx.min.js"));

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(asset_file))
}

/// A static file of the pages (`style.css`, `htmx.min.js`).
#[utoipa::path(get, path = "/assets/{name}", tag = "public",
    params(("name" = String, Path, description = "`style.css` or `htmx.min.js`.")),
    responses(
        (status = 200, description = "The file, cacheable for a year (its URL names its version).", content((String = "text/css"), (String = "text/javascript"))),
        (status = 404, description = "No such file.", body = crate::api::openapi::ErrorBody),
    ))]
async fn asset_file(Path(name): Path<String>) -> Response {
    let Some(asset) = [&STYLE, &HTMX].into_iter().find(|asset| asset.name == name) else {
        return crate::api::ApiError::NotFound(format!("no asset named `{name}`")).into_response();
    };
    let mut response = (StatusCode::OK, asset.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_url_changes_with_its_content() {
        assert!(STYLE.url().starts_with("/assets/style.css?v="));
        assert_ne!(digest(b"a"), digest(b"b"));
        assert_eq!(digest(b"a").len(), 12);
    }

    #[test]
    fn the_vendored_htmx_is_the_pinned_release() {
        let text = String::from_utf8_lossy(HTMX.bytes);
        assert!(text.contains("version:\"2.0.7\""), "htmx 2.0.7 is vendored");
    }
}
