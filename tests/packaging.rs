//! The packaging under deploy/, rendered as a cluster would get it: one FTP passive range runs
//! through deploy/ and the README's Deployment section; kustomize renames the ConfigMap when
//! spgate.toml changes (so pods roll); the Helm chart's pod checksum follows its configuration,
//! its defaults are hardened, and the spgate.toml it writes passes `spgate check --offline`.
//! The kustomize and Helm checks need kubectl and helm (or the helm-python-sdk package, Helm's Go
//! engine, which .ci/run installs): without them they print a note and pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The FTP passive range of deploy/: the Dockerfile exposes it, the manifests, the chart and
/// the README's Deployment section use it, and no other range appears in them.
const PASSIVE: &str = "50000-50019";

/// Every `5DDDD-5DDDD` port range in `text`.
fn port_ranges(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let digits = |at: usize| {
        bytes
            .get(at..at + 5)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    (0..bytes.len().saturating_sub(10))
        .filter(|&at| {
            bytes[at] == b'5'
                && (at == 0 || !bytes[at - 1].is_ascii_digit())
                && digits(at)
                && bytes[at + 5] == b'-'
                && digits(at + 6)
        })
        .map(|at| &text[at..at + 11])
        .collect()
}

#[test]
fn one_passive_range_everywhere() {
    let spgate: toml::Table = read("deploy/kubernetes/spgate.toml").parse().unwrap();
    assert_eq!(spgate["ftp"]["passive_ports"].as_str(), Some(PASSIVE));
    let values: Value = serde_yaml_ng::from_str(&read("deploy/helm/spgate/values.yaml")).unwrap();
    assert_eq!(values["ftp"]["passivePorts"].as_str(), Some(PASSIVE));
    let dockerfile = read("deploy/docker/Dockerfile");
    let expose = dockerfile.lines().find_map(|l| l.strip_prefix("EXPOSE "));
    let expose: Vec<&str> = expose.expect("EXPOSE").split_whitespace().collect();
    assert!(expose.contains(&PASSIVE), "EXPOSE {expose:?}");
    assert!(dockerfile.contains(&format!("-p {PASSIVE}:{PASSIVE}")));

    let mut files = vec![repo().join("README.md")];
    let mut folders = vec![repo().join("deploy")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for path in files {
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path == repo().join("README.md") {
            let start = text.find("\n## Deployment\n").expect("README: Deployment");
            let end = text[start + 1..]
                .find("\n## ")
                .map_or(text.len(), |e| start + 1 + e);
            text = text[start..end].to_owned();
        }
        for range in port_ranges(&text) {
            assert_eq!(range, PASSIVE, "{}", path.display());
        }
    }
}

/// `kubectl kustomize DIR` as YAML documents, or None without kubectl.
fn kustomize(dir: &Path) -> Option<Vec<Value>> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(documents(&String::from_utf8(output.stdout).unwrap()))
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .filter(|value: &Value| !value.is_null())
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kinds: &[&str]) -> &'a Value {
    let mut found = documents
        .iter()
        .filter(|d| kinds.iter().any(|k| d["kind"].as_str() == Some(k)));
    let first = found.next().unwrap_or_else(|| panic!("no {kinds:?}"));
    assert!(found.next().is_none(), "several {kinds:?}");
    first
}

/// The name of the ConfigMap, and the one the workload's `config` volume mounts.
fn configmap_names(documents: &[Value]) -> (String, String) {
    let configmap = of_kind(documents, &["ConfigMap"])["metadata"]["name"].as_str();
    let workload = of_kind(documents, &["Deployment", "StatefulSet"]);
    let volumes = workload["spec"]["template"]["spec"]["volumes"].as_sequence();
    let config = volumes
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "config");
    let mounted = config.expect("a config volume")["configMap"]["name"].as_str();
    (configmap.unwrap().to_owned(), mounted.unwrap().to_owned())
}

#[test]
fn kustomize_renames_the_configmap_when_spgate_toml_changes() {
    for folder in ["deploy/kubernetes", "deploy/kubernetes-cluster"] {
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(repo().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
        }
        let Some(before) = kustomize(copy.path()) else {
            eprintln!("note: kubectl is not installed; kustomize's ConfigMap names not checked");
            return;
        };
        let (name, mounted) = configmap_names(&before);
        assert!(name.starts_with("spgate-config-"), "{folder}: {name}");
        assert_eq!(
            mounted, name,
            "{folder}: the pod mounts the generated ConfigMap"
        );

        let toml = copy.path().join("spgate.toml");
        let edited = std::fs::read_to_string(&toml).unwrap() + "# edited\n";
        std::fs::write(&toml, edited).unwrap();
        let (renamed, mounted) = configmap_names(&kustomize(copy.path()).unwrap());
        assert_ne!(
            renamed, name,
            "{folder}: a changed spgate.toml must roll the pods"
        );
        assert_eq!(mounted, renamed, "{folder}");
    }
}

/// The chart rendered with `values` (YAML) as YAML documents: by `helm template` where helm is
/// installed, else by Helm's Go engine in the helm-python-sdk package; None with neither.
fn render_chart(values: &str) -> Option<Vec<Value>> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let chart = repo().join("deploy/helm/spgate");
    let mut helm = Command::new("helm");
    helm.args(["template", "spgate", "--namespace", "spgate", "-f"])
        .arg(&file)
        .arg(&chart);
    if let Ok(output) = helm.output() {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return Some(documents(&String::from_utf8(output.stdout).unwrap()));
    }
    let render = "import json, sys\nimport helm_python as helm\n\
        values = helm.values_from_yaml(open(sys.argv[2]).read())\n\
        with helm.Chart.load(sys.argv[1]) as chart:\n    \
        print(json.dumps(chart.render(values, name='spgate', namespace='spgate', is_install=True)))\n";
    let output = Command::new("python3")
        .args(["-c", render])
        .arg(&chart)
        .arg(&file)
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'helm_python'") {
        return None;
    }
    assert!(output.status.success(), "{stderr}");
    let manifests: BTreeMap<String, String> = serde_json::from_slice(&output.stdout).unwrap();
    let yaml = manifests.iter().filter(|(path, _)| path.ends_with(".yaml"));
    Some(yaml.flat_map(|(_, text)| documents(text)).collect())
}

/// `spgate check --offline` on `toml` with `/var/lib/spgate` in a temporary directory and
/// `env` as the only SPGATE_/secret variables.
fn check_offline(toml: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let toml = toml.replace(
        "/var/lib/spgate",
        dir.path().join("state").to_str().unwrap(),
    );
    let config = dir.path().join("spgate.toml");
    std::fs::write(&config, &toml).unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_spgate"));
    check.args(["check", "--offline", "--config"]).arg(&config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SPGATE_") {
            check.env_remove(name);
        }
    }
    let output = check.envs(env.iter().copied()).output().unwrap();
    assert!(
        output.status.success(),
        "spgate check --offline:\n{toml}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The chart rendered with its defaults, or None (after a note) without a renderer.
fn chart_defaults() -> Option<Vec<Value>> {
    let rendered = render_chart("{}");
    if rendered.is_none() {
        eprintln!("note: neither helm nor helm-python-sdk is installed; the chart is not rendered");
    }
    rendered
}

fn checksum(documents: &[Value]) -> String {
    let deployment = of_kind(documents, &["Deployment"]);
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    annotations["checksum/config"].as_str().unwrap().to_owned()
}

/// The `spgate.toml` of the chart's ConfigMap.
fn chart_toml(documents: &[Value]) -> String {
    let configmap = of_kind(documents, &["ConfigMap"]);
    configmap["data"]["spgate.toml"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn helm_chart_rolls_the_pod_when_its_configuration_changes() {
    let Some(defaults) = chart_defaults() else {
        return;
    };
    let (name, mounted) = configmap_names(&defaults);
    assert_eq!(mounted, name);
    assert_eq!(checksum(&defaults).len(), 64);
    assert_eq!(checksum(&render_chart("{}").unwrap()), checksum(&defaults));
    let resources = render_chart("resources: {limits: {memory: 512Mi}}").unwrap();
    assert_eq!(
        checksum(&resources),
        checksum(&defaults),
        "not a configuration change"
    );
    let passive_host = render_chart("ftp: {passiveHost: ftp.example.com}").unwrap();
    assert_ne!(
        checksum(&passive_host),
        checksum(&defaults),
        "[ftp] changed"
    );
    assert_ne!(chart_toml(&passive_host), chart_toml(&defaults));
}

/// What a Helm user gets by default: the one passive range published as itself, the admin port
/// closed to pods outside the monitoring namespace, the image's non-root user, no
/// ServiceMonitor; and a configuration spgate accepts.
#[test]
fn helm_chart_defaults_are_hardened_and_spgate_accepts_its_configuration() {
    let Some(defaults) = chart_defaults() else {
        return;
    };
    let service = defaults
        .iter()
        .find(|d| d["metadata"]["name"] == "spgate" && d["kind"] == "Service");
    let ports = service.expect("partner Service")["spec"]["ports"].as_sequence();
    let passive: Vec<u64> = (ports.unwrap().iter())
        .filter(|p| p["name"].as_str().unwrap().starts_with("pasv-"))
        .map(|p| {
            assert_eq!(p["port"], p["targetPort"]);
            p["port"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(passive, (50000..=50019).collect::<Vec<u64>>());
    let policy = of_kind(&defaults, &["NetworkPolicy"]);
    let rules = policy["spec"]["ingress"].as_sequence().unwrap();
    let admin_rule = rules.iter().find(|r| r["ports"][0]["port"] == 9090);
    let peers = admin_rule.expect("an admin rule")["from"].as_sequence();
    assert!(
        peers.is_some_and(|peers| !peers.is_empty()),
        "{admin_rule:?}"
    );
    let pod = &of_kind(&defaults, &["Deployment"])["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(10001));
    let security = &pod["containers"][0]["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert!(!defaults.iter().any(|d| d["kind"] == "ServiceMonitor"));

    let token = ("SPGATE_ADMIN_TOKEN", "token");
    check_offline(&chart_toml(&defaults), &[token]);
    // A connection and a user, the connection's secret from a Secret as an env: reference.
    let with_partner = render_chart(
        "ftp: {passiveHost: ftp.example.com, settings: {idle_timeout: 5m, greeting: \"Hello \\\"you\\\"\"}}\n\
         sftp: {settings: {login_grace_time: 1m}}\n\
         secretEnv: [{name: SP_SECRET, secretName: sharepoint, key: client-secret}]\n\
         config: |\n  [[connections]]\n  name = \"partners\"\n  tenant = \"contoso.onmicrosoft.com\"\n  \
         client_id = \"11111111-2222-3333-4444-555555555555\"\n  \
         site = \"https://contoso.sharepoint.com/sites/partners\"\n  client_secret = \"env:SP_SECRET\"\n  \
         [[users]]\n  name = \"partner1\"\n  \
         password_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n  \
         [[users.mounts]]\n  path = \"/\"\n  connection = \"partners\"\n  remote = \"/Inbound\"\n  \
         permissions = [\"list\", \"read\"]\n",
    )
    .unwrap();
    let container =
        &of_kind(&with_partner, &["Deployment"])["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_sequence().unwrap();
    let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["RUST_LOG", "SPGATE_ADMIN_TOKEN", "SP_SECRET"]);
    check_offline(
        &chart_toml(&with_partner),
        &[token, ("SP_SECRET", "secret")],
    );
}
