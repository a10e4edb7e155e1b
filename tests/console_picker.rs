//! The console's picker above the folders: the sites a connection's credential can see (a
//! search, paged and capped), a site's libraries, "use this site and library" filling the
//! connection's form (saved only with Save), and, for an app limited by Sites.Selected, the
//! explanation and the typed address of a granted site. Driven over HTTP (reqwest, the session
//! cookie, the CSRF token and this endpoint's `Origin` on the form post) against the real
//! gateway and simulator; what the pages list is checked against the simulator's own Graph
//! API.

mod common;
mod console_support;

use common::*;
use console_support::{add_admin, attrs, input, sign_in, unescape};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "picker admin password 1";
/// Sites named `project-NNN` beyond the cap of one search ([`spgate::graph::sites::MAX_SITES`]).
const PROJECTS: usize = 513;
/// A site whose name and library need escaping on every page.
const ODD_SITE: &str = "r&d <lab>";
const PARTNERS_URL: &str = "https://contoso.sharepoint.com/sites/partners";

/// The default world plus an app limited by Sites.Selected to partners; partners gets a
/// second library; more sites: finance (one library), the odd one, and the projects.
fn seed() -> String {
    let apps = r#"
[[tenants.apps]]
client_id = "selected-app"
secret = "selected-secret"
sites = ["partners"]
"#;
    let mut more = String::from(
        r#"folders = ["Inbound/2026", "Outbound"]
[[tenants.sites.drives]]
name = "Exchange"
folders = ["Drop"]
[[tenants.sites]]
hostname = "contoso.sharepoint.com"
name = "finance"
[[tenants.sites.drives]]
name = "Reports"
folders = ["Quarterly", "Annual"]
[[tenants.sites]]
hostname = "contoso.sharepoint.com"
name = "r&d <lab>"
[[tenants.sites.drives]]
name = "R&D <Files>"
"#,
    );
    for i in 0..PROJECTS {
        more += &format!(
            "[[tenants.sites]]\nhostname = \"contoso.sharepoint.com\"\nname = \"project-{i:03}\"\n"
        );
    }
    common::seed(apps, &more)
}

/// The console, signed in: its base URL and the session cookie.
struct Console {
    gateway: Gateway,
    base: String,
    http: reqwest::Client,
    cookie: String,
}

impl Console {
    /// A gateway on [`seed`] with the admin endpoint, connections `picked` (the full-access app)
    /// and `selected` (the Sites.Selected app) made through the admin API, so not managed by
    /// the configuration file, on the partners site; and an administrator signed in.
    async fn start() -> Console {
        let admin = format!("\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n");
        let gateway =
            Gateway::start_full(Ctx::with_seed(&seed()).await, &[], "", "", |_| admin).await;
        add_admin(&gateway, ADMIN, ADMIN_PASSWORD);
        let sim = gateway.ctx.sim.base.clone();
        for (name, app, secret) in [
            ("picked", APP, SECRET),
            ("selected", "selected-app", "selected-secret"),
        ] {
            let record = json!({"tenant": "contoso", "client_id": app, "client_secret": secret,
                "site": PARTNERS_URL, "authority": sim, "graph_url": sim});
            let made = reqwest::Client::new()
                .put(format!("{}/api/v1/connections/{name}", api_base(&gateway)))
                .bearer_auth(ADMIN_TOKEN)
                .json(&record)
                .send()
                .await
                .unwrap();
            assert!(made.status().is_success(), "{}", made.text().await.unwrap());
        }
        let base = api_base(&gateway);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (cookie, _) = sign_in(&http, &base, ADMIN, ADMIN_PASSWORD).await;
        Console {
            gateway,
            base,
            http,
            cookie,
        }
    }

    /// The HTML of console page `path` (with its query), which must answer 200.
    async fn get(&self, path: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let html = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        html
    }

    /// The admin API's record of connection `name`.
    async fn record(&self, name: &str) -> Value {
        get_json_with(
            &format!("{}/api/v1/connections/{name}", self.base),
            ADMIN_TOKEN,
        )
        .await
    }

    /// The simulator's request counts by kind since the last reset.
    async fn requests(&self) -> Value {
        self.gateway.ctx.sim.stats().await["by_kind"].clone()
    }

    async fn reset_requests(&self) {
        self.gateway
            .ctx
            .sim
            .control("/stats/reset", json!({}))
            .await;
    }
}

fn api_base(gateway: &Gateway) -> String {
    format!(
        "http://{}",
        gateway.admin.clone().expect("the admin endpoint")
    )
}

/// The one link of `html` whose element carries `marker`.
fn href(html: &str, marker: &str) -> String {
    let links = attrs(html, marker, "href");
    assert_eq!(links.len(), 1, "one link {marker}: {links:?}\n{html}");
    links[0].clone()
}

/// The `webUrl`s of the sites the simulator finds for `text`, as `token`'s app, every page.
async fn sim_search(ctx: &Ctx, token: &str, text: &str) -> Vec<String> {
    let mut urls = Vec::new();
    let mut next = Some(ctx.sim.graph(&format!("/sites?search={}", enc(text))));
    while let Some(url) = next {
        let response = ctx.sim.http.get(&url).bearer_auth(token).send().await;
        let page = json_status(response.unwrap(), 200).await;
        for site in page["value"].as_array().unwrap() {
            urls.push(site["webUrl"].as_str().unwrap().to_string());
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    urls
}

/// The names of the libraries of site `name`, from the simulator.
async fn sim_libraries(ctx: &Ctx, name: &str) -> Vec<String> {
    let url = ctx
        .sim
        .graph(&format!("/sites/{HOST}:/sites/{}:/drives", enc(name)));
    let drives = ctx.get_json(&url).await;
    drives["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sites_then_libraries_then_the_connection_form() {
    let console = Console::start().await;
    let ctx = &console.gateway.ctx;
    let sites_page = "/console/connections/picked/sites";

    // Every site, up to the cap: in SharePoint's order, one request per page of 200.
    let all = sim_search(ctx, &ctx.token, "*").await;
    assert_eq!(all.len(), PROJECTS + 3, "{all:?}");
    console.reset_requests().await;
    let html = console.get(sites_page).await;
    let shown = attrs(&html, "class=\"site\"", "data-url");
    assert_eq!(shown, all[..500], "the first 500 sites, in order");
    assert!(html.contains("id=\"more\""), "the cap is said: {html}");
    let asked = console.requests().await;
    assert_eq!(
        (asked["other"].as_u64(), asked["site"].as_u64()),
        (Some(3), Some(0)),
        "three pages of search, nothing else: {asked}"
    );

    // A search narrows the list, as SharePoint's own search does.
    for text in ["fin", "project-01", "r&d", "nothing-like-this"] {
        let html = console.get(&format!("{sites_page}?q={}", enc(text))).await;
        let shown = attrs(&html, "class=\"site\"", "data-url");
        assert_eq!(shown, sim_search(ctx, &ctx.token, text).await, "{text}");
        assert_eq!(input(&html, "q"), text);
    }
    let html = console.get(&format!("{sites_page}?q=partners")).await;
    assert!(html.contains("class=\"own\""), "the connection's own site");

    // What the pages show is escaped: the odd site's name never reaches the page as markup.
    let html = console.get(&format!("{sites_page}?q={}", enc("r&d"))).await;
    assert!(!html.contains("<lab>"), "{html}");
    assert!(html.contains("r&amp;d &lt;lab&gt;"), "{html}");
    let odd = console.get(&href(&html, "class=\"site\"")).await;
    assert!(
        !odd.contains("<Files>") && odd.contains("R&amp;D &lt;Files&gt;"),
        "{odd}"
    );
    assert_eq!(
        attrs(&odd, "class=\"library\"", "data-name"),
        sim_libraries(ctx, ODD_SITE).await
    );

    // A site's libraries, in one request: the connection's own is browsed, another is offered
    // to the connection's form.
    let html = console.get(&format!("{sites_page}?q=partners")).await;
    let partners = href(&html, "class=\"site\"");
    console.reset_requests().await;
    let html = console.get(&partners).await;
    assert_eq!(console.requests().await["site"], 1, "one request");
    assert_eq!(
        attrs(&html, "class=\"library\"", "data-name"),
        sim_libraries(ctx, "partners").await
    );
    assert_eq!(
        attrs(&html, "class=\"library\"", "data-name"),
        ["Documents", "Exchange"]
    );
    let browse = href(&html, "class=\"browse\"");
    assert!(
        browse.starts_with("/console/connections/picked/browse?"),
        "{browse}"
    );
    assert!(html.contains("this connection's library"), "{html}");
    let use_exchange = href(&html, "class=\"button use\"");

    // "Use this site and library": the form shows them; nothing is saved yet.
    let form = console.get(&use_exchange).await;
    assert_eq!(input(&form, "site"), PARTNERS_URL);
    assert_eq!(input(&form, "drive"), "Exchange");
    assert!(form.contains("id=\"prefilled\""), "the form says so");
    let record = console.record("picked").await.to_string();
    assert!(!record.contains("Exchange"), "not saved: {record}");

    // Another site's library, and a new connection on it.
    let html = console.get(&format!("{sites_page}?q=finance")).await;
    let finance = console.get(&href(&html, "class=\"site\"")).await;
    assert_eq!(
        attrs(&finance, "class=\"library\"", "data-name"),
        sim_libraries(ctx, "finance").await
    );
    let new = console
        .get(&href(&finance, "class=\"button secondary new\""))
        .await;
    assert_eq!(
        input(&new, "site"),
        "https://contoso.sharepoint.com/sites/finance"
    );
    assert_eq!(input(&new, "drive"), "Reports");

    // Saving the filled form moves the connection to finance's Reports: its folders are browsed.
    let form = console.get(&href(&finance, "class=\"button use\"")).await;
    let csrf = input(&form, "csrf");
    let saved = console
        .http
        .post(format!("{}/console/connections/picked", console.base))
        .header("cookie", &console.cookie)
        .header("origin", &console.base)
        .form(&[
            ("csrf", csrf.as_str()),
            ("site", &input(&form, "site")),
            ("drive", &input(&form, "drive")),
            ("tenant", "contoso"),
            ("client_id", APP),
            ("kind", "secret"),
            ("client_secret", ""),
            ("authority", &ctx.sim.base),
            ("graph_url", &ctx.sim.base),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        saved.status().is_redirection() || saved.status().is_success(),
        "{}",
        saved.text().await.unwrap()
    );
    let record = console.record("picked").await.to_string();
    assert!(
        record.contains("sites/finance") && record.contains("Reports"),
        "{record}"
    );
    let back = "/console/partners/new";
    let browse = console
        .get(&format!(
            "/console/connections/picked/browse?path=%2FQuarterly&back={}",
            enc(back)
        ))
        .await;
    assert!(
        unescape(&browse).contains("id=\"at\">/Quarterly<"),
        "{browse}"
    );

    // Breadcrumbs: all sites, the site, the library, the folders; each keeps `back`.
    let crumbs = attrs(&browse, "href=\"", "href")
        .into_iter()
        .filter(|h| h.contains("back=%2Fconsole%2Fpartners%2Fnew"))
        .collect::<Vec<_>>();
    let crumb = |page: &str| crumbs.iter().any(|h| h.contains(page));
    assert!(
        crumb("/picked/sites?") && crumb("/picked/libraries?site=") && crumb("path=%2F&"),
        "{crumbs:?}"
    );
    let nav = &browse[browse.find("id=\"crumbs\"").unwrap()..];
    let nav = &nav[..nav.find("</nav>").unwrap()];
    for (i, name) in ["All sites", "finance", "Reports", "Quarterly"]
        .iter()
        .enumerate()
    {
        let at = nav.find(&format!(">{name}</a>"));
        assert!(at.is_some(), "crumb {i} {name}: {nav}");
    }
    let libraries = console.get(&href(nav, ">finance")).await;
    assert!(libraries.contains("this connection's library"));

    // `back` is a console page or nothing.
    let html = console
        .get(&format!(
            "{sites_page}?q=partners&back={}",
            enc("https://evil.example/")
        ))
        .await;
    assert!(!html.contains("evil.example"), "{html}");
}

#[tokio::test]
async fn an_app_limited_to_granted_sites_types_the_address() {
    let console = Console::start().await;
    let ctx = &console.gateway.ctx;

    // SharePoint refuses the search to this app; the page says why and asks for the address.
    let token = ctx
        .sim
        .app_token_for("selected-app", "selected-secret")
        .await;
    let refused = ctx
        .sim
        .http
        .get(ctx.sim.graph("/sites?search=*"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let html = console
        .get("/console/connections/selected/sites?back=%2Fconsole%2Fsyncs%2Fnew")
        .await;
    assert!(
        html.contains(
            "This app is limited to the sites granted to it (Sites.Selected) and cannot list \
             sites: type the site's address below."
        ),
        "{html}"
    );
    assert!(attrs(&html, "class=\"site\"", "href").is_empty());
    let action = attrs(&html, "form method=\"get\" action=", "action");
    assert_eq!(action, ["/console/connections/selected/libraries"]);
    assert_eq!(input(&html, "back"), "/console/syncs/new");
    assert!(html.contains("id=\"site\""), "the address box");

    // The address of a granted site, pasted from a library's page: its libraries.
    let pasted = format!("{PARTNERS_URL}/Shared%20Documents/Forms/AllItems.aspx");
    let html = console
        .get(&format!(
            "/console/connections/selected/libraries?site={}&back=%2Fconsole%2Fsyncs%2Fnew",
            enc(&pasted)
        ))
        .await;
    assert!(!html.contains("id=\"error\""), "{html}");
    assert_eq!(
        attrs(&html, "class=\"library\"", "data-name"),
        sim_libraries(ctx, "partners").await
    );
    let browse = href(&html, "class=\"browse\"");
    assert!(browse.contains("back=%2Fconsole%2Fsyncs%2Fnew"), "{browse}");
    let folders = console.get(&browse).await;
    assert!(folders.contains("data-path=\"&#x2f;Inbound\""), "{folders}");

    // A site not granted, one that does not exist, and what is no site address at all.
    for (site, said) in [
        (
            "https://contoso.sharepoint.com/sites/finance".to_string(),
            "may not read",
        ),
        (
            "https://contoso.sharepoint.com/sites/nowhere".to_string(),
            "There is no site at",
        ),
        (
            "contoso/finance".to_string(),
            "is not the address of a site",
        ),
    ] {
        let html = console
            .get(&format!(
                "/console/connections/selected/libraries?site={}",
                enc(&site)
            ))
            .await;
        let error = attrs(&html, "id=\"error\"", "id");
        assert_eq!(error.len(), 1, "{site}: {html}");
        assert!(html.contains(said), "{site}: {html}");
    }
}
