//! The sign-in pages: server-rendered HTML whose forms post back to the authorize URL, with no
//! script (the `form_post` answer aside, which submits itself as Entra's does).
//!
//! Every page's `<body>` names it in `data-page` (`signin`, `picker`, `consent`, `error`,
//! `form_post`), and each element a test or a WebDriver script drives has a stable id:
//! - sign-in form: `upn`, `password`, `signin`; an error above it is `error` with `data-code`;
//! - account picker: `account-1`, `account-2`, ... in the order the accounts signed in, each
//!   with `data-upn`, and `use-another`;
//! - consent: `consent-user` (with `data-upn`), the list `scopes` of `li[data-scope]`,
//!   `accept` and `cancel`;
//! - error page: `error-code` (`AADSTSnnnn`) and `error-message`; the body's `data-error` is
//!   the OAuth error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::sim::error::AuthError;

/// What every form of a sign-in carries.
pub struct Context<'a> {
    /// The pending sign-in, posted back in a hidden field.
    pub flow: &'a str,
    pub client_id: &'a str,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f2f2f2;margin:0}\
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;box-shadow:0 2px 6px #0003}\
.brand{color:#737373;font-size:.85rem}label{display:block;margin-top:1rem}\
input{width:100%;box-sizing:border-box;padding:.4rem;margin-top:.3rem}\
button{margin-top:1rem;padding:.5rem 1rem}ul.accounts{list-style:none;padding:0}\
ul.accounts button{width:100%;text-align:left}.alert{color:#c50f1f}small{color:#555}";

/// A whole document; `attrs` are more attributes of `<body>` (already escaped).
fn page(kind: &str, attrs: &str, title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\n\
         <body data-page=\"{kind}\"{attrs}><main><p class=\"brand\">Microsoft (simulated by spgate sim)</p>\n\
         {body}</main></body></html>\n"
    )
}

fn html(status: StatusCode, document: String) -> Response {
    let mut response = (status, Html(document)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

fn form_open(ctx: &Context) -> String {
    format!(
        "<form method=\"post\" action=\"authorize\">\
         <input type=\"hidden\" name=\"flow\" value=\"{}\">",
        attr(ctx.flow)
    )
}

fn alert(error: Option<&AuthError>) -> String {
    error.map_or_else(String::new, |e| {
        format!(
            "<p id=\"error\" class=\"alert\" role=\"alert\" data-code=\"{}\">AADSTS{}: {}</p>",
            e.aadsts,
            e.aadsts,
            text(&e.description)
        )
    })
}

/// The sign-in form, the user name filled in with `upn`.
pub fn sign_in(ctx: &Context, upn: &str, error: Option<&AuthError>) -> Response {
    let body = format!(
        "<h1>Sign in</h1><p id=\"client\">to continue to <b>{client}</b></p>{alert}{form}\
         <label for=\"upn\">Email or phone</label>\
         <input id=\"upn\" name=\"upn\" type=\"email\" autocomplete=\"username\" value=\"{upn}\" autofocus>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">\
         <button id=\"signin\" type=\"submit\" name=\"action\" value=\"signin\">Sign in</button>\
         </form>",
        client = text(ctx.client_id),
        alert = alert(error),
        form = form_open(ctx),
        upn = attr(upn),
    );
    html(
        StatusCode::OK,
        page("signin", "", "Sign in to your account", &body),
    )
}

/// The account picker: `accounts` are (principal name, display name) in sign-in order.
pub fn picker(ctx: &Context, accounts: &[(String, String)], error: Option<&AuthError>) -> Response {
    let items: String = accounts
        .iter()
        .enumerate()
        .map(|(i, (upn, name))| {
            format!(
                "<li><button type=\"submit\" id=\"account-{n}\" name=\"account\" value=\"{upn_attr}\" data-upn=\"{upn_attr}\">\
                 <b>{name}</b><br>{upn}<br><small>Signed in</small></button></li>",
                n = i + 1,
                upn_attr = attr(upn),
                name = text(name),
                upn = text(upn),
            )
        })
        .collect();
    let body = format!(
        "<h1>Pick an account</h1><p id=\"client\">to continue to <b>{client}</b></p>{alert}{form}\
         <ul class=\"accounts\">{items}\
         <li><button type=\"submit\" id=\"use-another\" name=\"action\" value=\"another\">Use another account</button></li>\
         </ul></form>",
        client = text(ctx.client_id),
        alert = alert(error),
        form = form_open(ctx),
    );
    html(StatusCode::OK, page("picker", "", "Pick an account", &body))
}

/// The consent page for `upn`, listing `scopes`.
pub fn consent(ctx: &Context, upn: &str, scopes: &[String]) -> Response {
    let items: String = scopes
        .iter()
        .map(|s| {
            format!(
                "<li data-scope=\"{}\">{} <small>({})</small></li>",
                attr(s),
                text(describe(s)),
                text(s)
            )
        })
        .collect();
    let body = format!(
        "<h1>Permissions requested</h1><p><b>{client}</b><br><small>unverified</small></p>\
         <p id=\"consent-user\" data-upn=\"{upn_attr}\">{upn}</p>\
         <p>This app would like to:</p><ul id=\"scopes\">{items}</ul>\
         <p><small>Accepting these permissions means that you allow this app to use your data as \
         specified in their terms of service and privacy statement.</small></p>{form}\
         <button id=\"accept\" type=\"submit\" name=\"action\" value=\"accept\">Accept</button> \
         <button id=\"cancel\" type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button>\
         </form>",
        client = text(ctx.client_id),
        upn_attr = attr(upn),
        upn = text(upn),
        form = form_open(ctx),
    );
    html(
        StatusCode::OK,
        page("consent", "", "Permissions requested", &body),
    )
}

fn describe(scope: &str) -> &str {
    let name = scope
        .strip_prefix("https://graph.microsoft.com/")
        .unwrap_or(scope);
    match name {
        "openid" => "Sign you in",
        "profile" => "View your basic profile",
        "email" => "View your email address",
        "offline_access" => "Maintain access to data you have given it access to",
        ".default" => "Use the permissions configured for the application",
        "User.Read" => "Sign you in and read your profile",
        "User.ReadBasic.All" => "Read all users' basic profiles",
        "Files.Read" => "Read your files",
        "Files.Read.All" => "Read all files that you have access to",
        "Files.ReadWrite" => "Have full access to your files",
        "Files.ReadWrite.All" => "Have full access to all files you have access to",
        "Sites.Read.All" => "Read items in all site collections",
        "Sites.ReadWrite.All" => "Edit or delete items in all site collections",
        "Sites.Manage.All" => "Create, edit, and delete items and lists in all site collections",
        "Sites.FullControl.All" => "Have full control of all site collections",
        "Sites.Selected" => "Access selected site collections",
        other => other,
    }
}

/// The page a request gets when it cannot be sent back to the app.
pub fn error(e: &AuthError) -> Response {
    let body = format!(
        "<h1>Sorry, but we're having trouble signing you in.</h1>\
         <p id=\"error-code\">AADSTS{}</p><p id=\"error-message\">{}</p>",
        e.aadsts,
        text(&e.description)
    );
    let attrs = format!(" data-error=\"{}\"", attr(e.error));
    html(
        e.status,
        page("error", &attrs, "Sign in to your account", &body),
    )
}

/// `response_mode=form_post`: a form that posts `params` to the app and submits itself.
pub fn form_post(redirect_uri: &str, params: &[(&str, String)]) -> Response {
    let fields: String = params
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                attr(k),
                attr(v)
            )
        })
        .collect();
    let body = format!(
        "<form id=\"response\" method=\"post\" action=\"{}\">{fields}\
         <noscript><p>Script is disabled. Click Continue.</p>\
         <button id=\"continue\" type=\"submit\">Continue</button></noscript></form>\
         <script>document.getElementById('response').submit()</script>",
        attr(redirect_uri)
    );
    html(StatusCode::OK, page("form_post", "", "Working...", &body))
}
