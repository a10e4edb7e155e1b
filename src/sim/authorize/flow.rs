//! The sign-in conversation. A checked request is answered at once (single sign-on,
//! `prompt=none`) or gets a page (sign-in form, account picker, consent) and waits, parked
//! under a random id that the page's form posts back; each post moves it on until the app gets
//! an authorization code, or an error, at its redirect URI.

use std::time::{Duration, Instant};

use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::pages::{self, Context};
use super::request::{Prompt, Request, disabled};
use super::{PickedBy, Record, aadsts};
use crate::sim::error::AuthError;
use crate::sim::state::Sim;

/// How long a sign-in may wait on its pages.
pub const LIFETIME: Duration = Duration::from_secs(3600);
/// The browser session cookie: which accounts signed in in this browser.
pub const COOKIE: &str = "sim_session";

/// A sign-in waiting for the browser.
pub struct Flow {
    pub request: Request,
    pub stage: Stage,
    pub expires: Instant,
}

/// The page a waiting sign-in showed last.
pub enum Stage {
    Credentials,
    Picker,
    Consent { user: String, picked_by: PickedBy },
}

/// What the pages' forms post.
#[derive(Default, Deserialize)]
pub struct Form {
    flow: Option<String>,
    action: Option<String>,
    account: Option<String>,
    upn: Option<String>,
    password: Option<String>,
}

/// Where a request goes first.
#[derive(Debug)]
pub enum Next {
    Form,
    Picker,
    /// Single sign-on with this account.
    Account(String),
    Fail(AuthError),
}

/// Decides from the prompt, the login hint and the accounts of the request's tenant signed in
/// in this browser. Without a prompt one account signs in silently: the reason admins open a
/// private window to sign in as someone else.
pub fn choose(prompt: Prompt, hint: Option<&str>, accounts: &[String]) -> Next {
    let hinted = hint.and_then(|h| accounts.iter().find(|a| a.eq_ignore_ascii_case(h)));
    match prompt {
        Prompt::Login => Next::Form,
        Prompt::SelectAccount if accounts.is_empty() => Next::Form,
        Prompt::SelectAccount => Next::Picker,
        Prompt::Silent => match (hint, hinted, accounts) {
            (_, Some(account), _) | (None, None, [account]) => Next::Account(account.clone()),
            (Some(_), None, _) | (None, None, []) => Next::Fail(aadsts(
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            )),
            (None, None, _) => Next::Fail(aadsts(
                "interaction_required",
                16000,
                "Either multiple user identities are available for the current request or selected account is not supported for the scenario.",
            )),
        },
        Prompt::Auto | Prompt::Consent => match (hint, hinted, accounts) {
            (_, Some(account), _) | (None, None, [account]) => Next::Account(account.clone()),
            (Some(_), None, _) | (None, None, []) => Next::Form,
            (None, None, _) => Next::Picker,
        },
    }
}

/// Answers a checked request that arrived from `browser` (its session cookie).
pub fn start(sim: &Sim, request: Request, browser: Option<&str>) -> Response {
    let accounts = sim.sign_ins.accounts(browser, &request.tenant_id);
    match choose(request.prompt, request.login_hint.as_deref(), &accounts) {
        Next::Account(user) => signed_in(sim, request, user, PickedBy::Sso, browser),
        Next::Form => {
            let hint = request.login_hint.clone().unwrap_or_default();
            ask(sim, request, Stage::Credentials, |ctx| {
                pages::sign_in(ctx, &hint, None)
            })
        }
        Next::Picker => show_picker(sim, request, &accounts, None),
        Next::Fail(e) => request.reply.error(&e),
    }
}

/// Moves a waiting sign-in on with what its page posted.
pub fn step(sim: &Sim, form: Form, browser: Option<&str>) -> Response {
    let Some(Flow { request, stage, .. }) =
        form.flow.as_deref().and_then(|id| sim.sign_ins.take(id))
    else {
        return pages::error(&aadsts(
            "invalid_request",
            50089,
            "Flow token expired. Authentication failed: have the user try signing in again.",
        ));
    };
    match (stage, form.action.as_deref(), form.account) {
        (Stage::Picker, _, Some(account)) => pick(sim, request, &account, browser),
        (Stage::Picker, Some("another"), None) => {
            let hint = request.login_hint.clone().unwrap_or_default();
            ask(sim, request, Stage::Credentials, |ctx| {
                pages::sign_in(ctx, &hint, None)
            })
        }
        (Stage::Credentials, Some("signin"), _) => {
            let upn = form.upn.unwrap_or_default();
            sign_in(
                sim,
                request,
                upn.trim(),
                &form.password.unwrap_or_default(),
                browser,
            )
        }
        (Stage::Consent { user, picked_by }, Some("accept"), _) => {
            sim.sign_ins.consent(&request, &user);
            finish(sim, request, &user, picked_by, browser)
        }
        (Stage::Consent { user, picked_by }, Some("cancel"), _) => {
            let e = aadsts(
                "access_denied",
                65004,
                "User declined to consent to access the app.",
            );
            sim.sign_ins
                .record(Record::new(&request, &user, picked_by, Some(e.aadsts)));
            request.reply.error(&e)
        }
        _ => pages::error(&aadsts(
            "invalid_request",
            90023,
            "The form posted does not belong to the step this sign-in is at.",
        )),
    }
}

/// Parks the sign-in at `stage` and shows its page.
fn ask(
    sim: &Sim,
    request: Request,
    stage: Stage,
    page: impl FnOnce(&Context) -> Response,
) -> Response {
    let client_id = request.client_id.clone();
    let flow = sim.sign_ins.park(Flow {
        request,
        stage,
        expires: Instant::now() + LIFETIME,
    });
    page(&Context {
        flow: &flow,
        client_id: &client_id,
    })
}

fn show_picker(
    sim: &Sim,
    request: Request,
    accounts: &[String],
    error: Option<&AuthError>,
) -> Response {
    let listed = display_names(sim, &request.tenant_id, accounts);
    ask(sim, request, Stage::Picker, |ctx| {
        pages::picker(ctx, &listed, error)
    })
}

fn pick(sim: &Sim, request: Request, account: &str, browser: Option<&str>) -> Response {
    let accounts = sim.sign_ins.accounts(browser, &request.tenant_id);
    match accounts.iter().find(|a| a.eq_ignore_ascii_case(account)) {
        Some(user) => signed_in(sim, request, user.clone(), PickedBy::Picker, browser),
        None => {
            let e = aadsts(
                "invalid_request",
                16001,
                "The account selected is not signed in in this browser. Pick another account.",
            );
            show_picker(sim, request, &accounts, Some(&e))
        }
    }
}

fn sign_in(
    sim: &Sim,
    request: Request,
    upn: &str,
    password: &str,
    browser: Option<&str>,
) -> Response {
    match check_credentials(sim, &request.tenant_id, upn, password) {
        Ok(user) => {
            let browser = sim.sign_ins.remember(browser, &request.tenant_id, &user);
            let mut response = signed_in(sim, request, user, PickedBy::Form, Some(&browser));
            let cookie = format!("{COOKIE}={browser}; Path=/; HttpOnly; SameSite=Lax");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) => {
            sim.sign_ins
                .record(Record::new(&request, upn, PickedBy::Form, Some(e.aadsts)));
            ask(sim, request, Stage::Credentials, |ctx| {
                pages::sign_in(ctx, upn, Some(&e))
            })
        }
    }
}

/// The user is known: consent when the app has not got it for every scope, then the code.
fn signed_in(
    sim: &Sim,
    request: Request,
    user: String,
    picked_by: PickedBy,
    browser: Option<&str>,
) -> Response {
    if request.prompt != Prompt::Consent && sim.sign_ins.has_consent(&request, &user) {
        return finish(sim, request, &user, picked_by, browser);
    }
    if request.prompt == Prompt::Silent {
        let e = aadsts(
            "consent_required",
            65001,
            &format!(
                "The user or administrator has not consented to use the application with ID '{}'. Send an interactive authorization request for this user and resource.",
                request.client_id
            ),
        );
        sim.sign_ins
            .record(Record::new(&request, &user, picked_by, Some(e.aadsts)));
        return request.reply.error(&e);
    }
    let scopes = request.scopes.clone();
    let shown = user.clone();
    ask(sim, request, Stage::Consent { user, picked_by }, |ctx| {
        pages::consent(ctx, &shown, &scopes)
    })
}

/// Sends the app its authorization code.
fn finish(
    sim: &Sim,
    request: Request,
    user: &str,
    picked_by: PickedBy,
    browser: Option<&str>,
) -> Response {
    if let Some(e) = app_disabled(sim, &request) {
        sim.sign_ins
            .record(Record::new(&request, user, picked_by, Some(e.aadsts)));
        return request.reply.error(&e);
    }
    let code = sim.sign_ins.issue_code(&request, user);
    sim.sign_ins
        .record(Record::new(&request, user, picked_by, None));
    let session_state = sim.sign_ins.session_state(browser);
    request
        .reply
        .send(vec![("code", code), ("session_state", session_state)])
}

/// The principal name as seeded, when `password` is the user's.
fn check_credentials(
    sim: &Sim,
    tenant_id: &str,
    upn: &str,
    password: &str,
) -> Result<String, AuthError> {
    let world = sim.world.lock();
    let tenant = world.tenants.iter().find(|t| t.id == tenant_id);
    let Some(user) = tenant.and_then(|t| t.user(upn)) else {
        return Err(aadsts(
            "invalid_grant",
            50034,
            &format!(
                "The user account {upn} does not exist in the '{}' directory. To sign into this application, the account must be added to the directory.",
                tenant.map_or("", |t| t.name.as_str())
            ),
        ));
    };
    if !bool::from(user.password.as_bytes().ct_eq(password.as_bytes())) {
        return Err(aadsts(
            "invalid_grant",
            50126,
            "Error validating credentials due to invalid username or password.",
        ));
    }
    Ok(user.name.clone())
}

/// The error for an app the control API revoked since the sign-in began.
fn app_disabled(sim: &Sim, request: &Request) -> Option<AuthError> {
    let world = sim.world.lock();
    world
        .tenants
        .iter()
        .filter(|t| t.id == request.tenant_id)
        .flat_map(|t| &t.apps)
        .find(|a| a.client_id == request.client_id && a.revoked)
        .map(disabled)
}

/// (principal name, display name) of each account.
fn display_names(sim: &Sim, tenant_id: &str, accounts: &[String]) -> Vec<(String, String)> {
    let world = sim.world.lock();
    let tenant = world.tenants.iter().find(|t| t.id == tenant_id);
    accounts
        .iter()
        .map(|upn| {
            let name = tenant
                .and_then(|t| t.user(upn))
                .map_or_else(|| upn.clone(), |u| u.display_name.clone());
            (upn.clone(), name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn sso(next: Next) -> Option<String> {
        match next {
            Next::Account(a) => Some(a),
            _ => None,
        }
    }

    fn fail(next: Next) -> Option<(&'static str, u64)> {
        match next {
            Next::Fail(e) => Some((e.error, e.aadsts)),
            _ => None,
        }
    }

    #[test]
    fn one_account_signs_in_silently_unless_asked() {
        let one = accounts(&["a@x"]);
        assert_eq!(
            sso(choose(Prompt::Auto, None, &one)).as_deref(),
            Some("a@x")
        );
        assert_eq!(
            sso(choose(Prompt::Consent, None, &one)).as_deref(),
            Some("a@x")
        );
        assert_eq!(
            sso(choose(Prompt::Silent, None, &one)).as_deref(),
            Some("a@x")
        );
        assert!(matches!(choose(Prompt::Login, None, &one), Next::Form));
        assert!(matches!(
            choose(Prompt::SelectAccount, None, &one),
            Next::Picker
        ));
    }

    #[test]
    fn no_account_asks_for_credentials_or_fails_silently() {
        assert!(matches!(choose(Prompt::Auto, None, &[]), Next::Form));
        assert!(matches!(
            choose(Prompt::SelectAccount, None, &[]),
            Next::Form
        ));
        assert_eq!(
            fail(choose(Prompt::Silent, None, &[])),
            Some(("login_required", 50058))
        );
    }

    #[test]
    fn several_accounts_need_the_picker_or_a_hint() {
        let two = accounts(&["a@x", "b@x"]);
        assert!(matches!(choose(Prompt::Auto, None, &two), Next::Picker));
        assert_eq!(
            sso(choose(Prompt::Auto, Some("B@X"), &two)).as_deref(),
            Some("b@x")
        );
        assert!(matches!(
            choose(Prompt::Auto, Some("c@x"), &two),
            Next::Form
        ));
        assert_eq!(
            fail(choose(Prompt::Silent, None, &two)),
            Some(("interaction_required", 16000))
        );
        assert_eq!(
            fail(choose(Prompt::Silent, Some("c@x"), &two)),
            Some(("login_required", 50058))
        );
        assert!(matches!(
            choose(Prompt::Login, Some("a@x"), &two),
            Next::Form
        ));
    }
}
