//! The live web view (`--web HOST:PORT`): a page at `/` that draws every
//! player on a map, fed by a read-only WebSocket on `/ws` (see
//! [`format`] for its bytes and [`viewer`] for its session).
//!
//! Everything the page needs is embedded in the binary (no CDN, no build
//! step, works offline), and served with a strict Content-Security-Policy:
//! scripts and styles from this origin only, nothing inline, no plugins, no
//! framing, and Trusted Types required, so no string can ever be turned
//! into markup. Player names are user input; the page only ever draws them
//! as text (`textContent`, `fillText`).
//!
//! Only `GET` (and `HEAD`) of `/`, the few assets and `/ws` are served:
//! other paths are 404, other methods 405.

pub mod format;
pub mod viewer;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Shared;

/// The page's Content-Security-Policy: this origin's files, nothing inline.
/// `connect-src 'self'` covers the page's own `ws:`/`wss:` origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
trusted-types 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
];

/// The web view's routes, for [`crate::http::serve`].
pub fn router(shared: Arc<Shared>) -> Router {
    with_page(Router::new().route("/ws", get(upgrade))).with_state(shared)
}

/// `router` plus the page's files and a 404 for every other path: what the
/// live view and `gameserver replay --web` share.
pub fn with_page<S: Clone + Send + Sync + 'static>(mut router: Router<S>) -> Router<S> {
    for asset in ASSETS {
        router = router.route(
            asset.path,
            get(move || async move { page(asset.content_type, asset.body) }),
        );
    }
    router.fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            page("text/plain; charset=utf-8", "not found\n"),
        )
    })
}

/// A response with the security headers every answer carries.
fn page(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // The assets change with the binary: revalidate, never serve stale.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

async fn upgrade(
    upgrade: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(shared): State<Arc<Shared>>,
) -> impl IntoResponse {
    upgrade
        .max_message_size(viewer::MAX_VIEWER_MESSAGE_BYTES)
        .max_frame_size(viewer::MAX_VIEWER_MESSAGE_BYTES)
        .on_upgrade(move |socket| viewer::serve(socket, peer, shared))
}
