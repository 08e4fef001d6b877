//! Signing in and out, the session cookie and CSRF tokens.
//!
//! The session cookie holds the API key sealed with the server's secret key (so it is useless
//! off this server and cannot be forged), marked `Secure`, `HttpOnly` and `SameSite=Strict`,
//! under the `__Host-` prefix. Nothing is stored server-side: every page re-presents the key to
//! the API, so revoking the key ends its sessions at once. Each form carries a CSRF token
//! derived from the cookie; the sign-in form, before any session exists, carries a random token
//! matched against a short-lived cookie (double submit).

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use colloquy_core::{keys, random, time};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Dash;
use crate::api::Credentials;
use crate::error::{Error, Result};
use crate::layout;

const SESSION_COOKIE: &str = "__Host-colloquy_session";
const LOGIN_COOKIE: &str = "__Host-colloquy_login";
/// Binds sealed cookies to this use, so no other sealed value of the server opens as one.
const SEAL_CONTEXT: &[u8] = b"colloquy-dashboard-session";
/// How long a sign-in lasts.
const SESSION_SECS: i64 = 12 * 3600;

/// The signed-in user of a page: the key their session holds.
pub struct Viewer {
    token: String,
    /// Who is signed in, in which workspace ("ada@acme.test · acme"), for the page header.
    pub label: String,
    /// The token forms of this session must carry.
    pub csrf: String,
    /// What every page says first, when the server cannot answer yet.
    pub notice: Option<Arc<str>>,
    host: Option<HeaderValue>,
}

impl Viewer {
    /// How to call the API as this viewer.
    pub fn creds(&self) -> Credentials<'_> {
        Credentials { token: &self.token, host: self.host.as_ref() }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check(&self, presented: &str) -> Result<()> {
        if same(presented.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

impl FromRequestParts<Dash> for Viewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, dash: &Dash) -> Result<Viewer> {
        let signed_out = || Error::SignedOut {
            next: if parts.method == Method::GET {
                parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned())
            } else {
                "/".to_owned()
            },
        };
        let sealed = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(signed_out)?;
        let opened = dash
            .keyring
            .open(sealed, SEAL_CONTEXT)
            .ok()
            .and_then(|plain| String::from_utf8(plain).ok())
            .ok_or_else(signed_out)?;
        let mut parts_of = opened.splitn(3, '\n');
        let (Some(issued), Some(token)) = (parts_of.next(), parts_of.next()) else {
            return Err(signed_out());
        };
        let label = parts_of.next().unwrap_or_default().to_owned();
        let issued: i64 = issued.parse().map_err(|_| signed_out())?;
        if time::now_secs() - issued > SESSION_SECS {
            return Err(signed_out());
        }
        Ok(Viewer {
            token: token.to_owned(),
            label,
            csrf: csrf_of(sealed),
            notice: dash.notice.clone(),
            host: parts.headers.get(header::HOST).cloned(),
        })
    }
}

/// The CSRF token of a session: a hash of its sealed cookie, which only the browser holding
/// the cookie (HttpOnly, so not even its scripts) and this server know.
fn csrf_of(sealed: &str) -> String {
    keys::hash_token(&format!("csrf:{sealed}"))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of one cookie of the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: i64) -> (header::HeaderName, String) {
    (
        header::SET_COOKIE,
        format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"),
    )
}

/// Only paths on this site may be returned to after signing in.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: the sign-in form.
pub async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    login_form(StatusCode::OK, local_path(q.next.as_deref()), None)
}

fn login_form(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let token = URL_SAFE_NO_PAD.encode(random::bytes::<24>());
    let body: Markup = html! {
        form.signin method="post" action="/login" {
            input type="hidden" name="_csrf" value=(token);
            input type="hidden" name="next" value=(next);
            @if let Some(problem) = problem {
                p.error role="alert" id="signin-problem" { (problem) }
            }
            label for="api_key" { "API key" }
            input #api_key type="password" name="api_key" required autocomplete="current-password"
                aria-describedby="api-key-help";
            p.hint id="api-key-help" {
                "The key is kept in a secure, HttpOnly cookie for 12 hours. The dashboard shows only its workspace and what its scopes allow."
            }
            button type="submit" { "Sign in" }
        }
    };
    (
        status,
        [set_cookie(LOGIN_COOKIE, &token, 600)],
        Html(layout::bare("Sign in", body).into_string()),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    api_key: String,
    #[serde(rename = "_csrf")]
    csrf: String,
    next: Option<String>,
}

/// `POST /login`: checks the key against the API, then starts the session.
pub async fn login(
    State(dash): State<Dash>, headers: HeaderMap, Form(form): Form<LoginForm>,
) -> Result<Response> {
    let expected = cookie(&headers, LOGIN_COOKIE).ok_or(Error::Forbidden)?;
    if !same(expected.as_bytes(), form.csrf.as_bytes()) {
        return Err(Error::Forbidden);
    }
    let next = local_path(form.next.as_deref()).to_owned();
    let token = form.api_key.trim();
    let refused =
        || login_form(StatusCode::UNAUTHORIZED, &next, Some("That API key is not valid."));
    // A key that cannot even travel in a header is no key (and must not reach the API as one).
    if token.is_empty() || HeaderValue::from_str(token).is_err() {
        return Ok(refused());
    }
    // `/api/whoami` answers any valid key (401 for one unknown or revoked) with who it is,
    // which every page's header then shows.
    let creds = Credentials { token, host: headers.get(header::HOST) };
    let (status, who) = dash.api.raw(&creds, Method::GET, "/api/whoami", None).await?;
    if status == StatusCode::UNAUTHORIZED {
        return Ok(refused());
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Ok(login_form(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some("Too many requests with this key; try again in a minute."),
        ));
    }
    let label = format!(
        "{} · {}",
        who["user"]["email"].as_str().unwrap_or_default(),
        who["workspace"]["name"].as_str().unwrap_or_default()
    )
    .replace('\n', " ");
    let session = format!("{}\n{token}\n{label}", time::now_secs());
    let sealed = dash.keyring.seal(session.as_bytes(), SEAL_CONTEXT);
    Ok((
        AppendHeaders([
            set_cookie(SESSION_COOKIE, &sealed, SESSION_SECS),
            set_cookie(LOGIN_COOKIE, "", 0),
        ]),
        Redirect::to(&next),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf")]
    pub csrf: String,
}

/// `POST /logout`: forgets the session.
pub async fn logout(viewer: Viewer, Form(form): Form<CsrfForm>) -> Result<Response> {
    viewer.check(&form.csrf)?;
    Ok(([set_cookie(SESSION_COOKIE, "", 0)], Redirect::to("/login")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/agents?x=1")), "/agents?x=1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-colloquy_session=v1.k.abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("v1.k.abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }
}
