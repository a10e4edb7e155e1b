//! The deployment files under `deploy/` and the README's "Deployment" section: the Kubernetes
//! manifests parse and agree with the `spgate.toml` they carry, every embedded configuration
//! passes `spgate check --offline`, the systemd unit passes `systemd-analyze verify` (when it is
//! installed), and the Dockerfile's final stage is a slim, non-root image. Nothing here touches
//! the network.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every YAML document of every file in `deploy/kubernetes`, with the file's name.
fn manifests() -> Vec<(String, Value)> {
    manifests_in("deploy/kubernetes")
}

/// Every YAML document of every file in the folder `relative`, with the file's name.
fn manifests_in(relative: &str) -> Vec<(String, Value)> {
    let dir = repo().join(relative);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !value.is_null() {
                documents.push((name.clone(), value));
            }
        }
    }
    documents
}

/// The one document of `kind` named `name`.
fn resource(kind: &str, name: &str) -> Value {
    let mut found = manifests().into_iter().map(|(_, value)| value).filter(|v| {
        v["kind"].as_str() == Some(kind) && v["metadata"]["name"].as_str() == Some(name)
    });
    let value = found.next().unwrap_or_else(|| panic!("no {kind} {name}"));
    assert!(found.next().is_none(), "two {kind} {name}");
    value
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {value:?}"))
}

fn list<'a>(value: &'a Value, what: &str) -> &'a [Value] {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what}: not a list: {value:?}"))
}

/// The entry of the list `items` whose `name` is `name`.
fn named<'a>(items: &'a Value, name: &str) -> &'a Value {
    let mut found = items.as_sequence().into_iter().flatten();
    found
        .find(|item| item["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no entry named {name} in {items:?}"))
}

/// The `spgate.toml` of deploy/kubernetes, as text.
fn configmap_toml() -> String {
    generated_toml("deploy/kubernetes")
}

/// The `spgate.toml` the kustomization in `relative` makes the ConfigMap `spgate-config` of
/// (with a configMapGenerator, so that the name changes with the content and pods roll).
fn generated_toml(relative: &str) -> String {
    let path = format!("{relative}/kustomization.yaml");
    let kustomization: Value = serde_yaml_ng::from_str(&read(&path)).unwrap();
    let generator = named(&kustomization["configMapGenerator"], "spgate-config");
    let files = list(&generator["files"], "configMapGenerator files");
    assert_eq!(files, [Value::from("spgate.toml")], "{path}");
    read(&format!("{relative}/spgate.toml"))
}

/// The port of an `IP:port` listen address in `table[section].listen`.
fn listen_port(table: &toml::Table, section: &str) -> u64 {
    let listen = table[section]["listen"].as_str().unwrap();
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

/// The value of `--flag` in the process arguments.
fn flag<'a>(args: &'a [Value], name: &str) -> &'a str {
    let at = args.iter().position(|a| a.as_str() == Some(name));
    let at = at.unwrap_or_else(|| panic!("no {name} in {args:?}"));
    text(&args[at + 1], name)
}

/// Every `file:` secret path in a TOML text.
fn file_secrets(toml: &str) -> Vec<String> {
    toml.split("\"file:")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

/// Writes `toml` into a temporary directory with each `(prefix, name)` of `rewrite` replaced by
/// a directory of that name inside it, creates every `file:` secret it references there, and
/// runs `spgate check --offline` on it.
fn check_offline(what: &str, toml: &str, rewrite: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut toml = toml.to_owned();
    for (prefix, name) in rewrite {
        let local = dir.path().join(name);
        std::fs::create_dir_all(&local).unwrap();
        toml = toml.replace(prefix, &local.to_string_lossy());
    }
    for secret in file_secrets(&toml) {
        let path = Path::new(&secret);
        assert!(
            path.starts_with(dir.path()),
            "{what}: secret {secret} outside the mounted secret directories"
        );
        std::fs::write(path, "placeholder-secret\n").unwrap();
    }
    let config = dir.path().join("spgate.toml");
    std::fs::write(&config, &toml).unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_spgate"));
    check.args(["check", "--offline", "--config"]).arg(&config);
    // The file alone: no SPGATE_CONFIG, no SPGATE_SECTION__KEY overrides from this process.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SPGATE_") {
            check.env_remove(name);
        }
    }
    let output = check.output().unwrap();
    assert!(
        output.status.success(),
        "{what}: spgate check --offline failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_manifest_parses_and_kustomization_lists_them_all() {
    kustomization_lists_every_manifest(&manifests());
    kustomization_lists_every_manifest(&manifests_in("deploy/kubernetes-cluster"));
}

fn kustomization_lists_every_manifest(documents: &[(String, Value)]) {
    let mut files = BTreeSet::new();
    for (file, value) in documents {
        assert!(value["apiVersion"].is_string(), "{file}: no apiVersion");
        assert!(value["kind"].is_string(), "{file}: no kind");
        if value["kind"].as_str() != Some("Kustomization") {
            assert!(
                value["metadata"]["name"].is_string(),
                "{file}: no metadata.name"
            );
            files.insert(file.clone());
        }
    }
    let kustomization = documents
        .iter()
        .find(|(file, _)| file == "kustomization.yaml")
        .map(|(_, value)| value)
        .expect("kustomization.yaml");
    let listed: BTreeSet<String> = list(&kustomization["resources"], "resources")
        .iter()
        .map(|r| text(r, "resources[]").to_owned())
        .collect();
    assert_eq!(listed, files, "kustomization.yaml resources vs the files");
}

#[test]
fn deployment_is_one_hardened_pod_probing_the_admin_port() {
    let deployment = resource("Deployment", "spgate");
    let config: toml::Table = configmap_toml().parse().unwrap();
    let spec = &deployment["spec"];
    assert_eq!(
        spec["replicas"].as_u64(),
        Some(1),
        "sync jobs need exactly one instance"
    );
    assert_eq!(spec["strategy"]["type"].as_str(), Some("Recreate"));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 30);

    let containers = list(&pod["containers"], "containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    let dropped = list(&security["capabilities"]["drop"], "capabilities.drop");
    assert!(dropped.iter().any(|c| c.as_str() == Some("ALL")));
    assert_eq!(
        container["resources"]["limits"]["memory"].as_str(),
        Some("256Mi")
    );
    assert!(container["resources"]["requests"]["memory"].is_string());

    // Probes: GET /healthz and /readyz on the port named like the one [admin] listens on.
    let port_of = |name: &str| {
        named(&container["ports"], name)["containerPort"]
            .as_u64()
            .unwrap()
    };
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        let port = match &get["port"] {
            Value::Number(n) => n.as_u64().unwrap(),
            name => port_of(text(name, probe)),
        };
        assert_eq!(
            port,
            listen_port(&config, "admin"),
            "{probe} port vs [admin] listen"
        );
    }
    assert_eq!(port_of("sftp"), listen_port(&config, "sftp"));
    assert_eq!(port_of("ftp"), listen_port(&config, "ftp"));

    // Mounts: the configuration where --config looks, the state where [state] dir says.
    let mount_of = |volume: &str| {
        text(
            &named(&container["volumeMounts"], volume)["mountPath"],
            "mountPath",
        )
        .to_owned()
    };
    let args = list(&container["args"], "args");
    assert_eq!(args[0].as_str(), Some("serve"));
    assert_eq!(
        flag(args, "--config"),
        format!("{}/spgate.toml", mount_of("config"))
    );
    assert_eq!(
        config["state"]["dir"].as_str(),
        Some(mount_of("state").as_str())
    );
    let volume = |name: &str| named(&pod["volumes"], name);
    assert_eq!(
        volume("config")["configMap"]["name"].as_str(),
        Some("spgate-config")
    );
    assert_eq!(
        volume("state")["persistentVolumeClaim"]["claimName"].as_str(),
        Some("spgate-state")
    );
    resource("PersistentVolumeClaim", "spgate-state");

    // Every file: secret of the configuration is a key of the mounted Secret.
    let secret_dir = mount_of("secrets");
    let secret_name = text(&volume("secrets")["secret"]["secretName"], "secretName");
    let secret = resource("Secret", secret_name);
    let secrets = file_secrets(&configmap_toml());
    assert!(!secrets.is_empty());
    for path in secrets {
        let key = Path::new(&path).strip_prefix(&secret_dir);
        let key = key.unwrap_or_else(|_| panic!("{path} is not under {secret_dir}"));
        let key = key.to_str().unwrap();
        assert!(
            secret["stringData"][key].is_string(),
            "{secret_name} has no key {key}"
        );
    }
}

#[test]
fn services_publish_the_configured_ports() {
    let config: toml::Table = configmap_toml().parse().unwrap();
    let service = resource("Service", "spgate");
    let spec = &service["spec"];
    assert_eq!(spec["type"].as_str(), Some("LoadBalancer"));
    assert_eq!(spec["externalTrafficPolicy"].as_str(), Some("Local"));
    let ports = list(&spec["ports"], "ports");
    for port in ports {
        assert_eq!(port["protocol"].as_str(), Some("TCP"));
    }
    assert_eq!(
        named(&spec["ports"], "sftp")["targetPort"].as_str(),
        Some("sftp")
    );
    assert_eq!(
        named(&spec["ports"], "ftp")["targetPort"].as_str(),
        Some("ftp")
    );
    assert_eq!(
        named(&spec["ports"], "ftp")["port"].as_u64(),
        Some(listen_port(&config, "ftp"))
    );

    // Each passive port published as itself, exactly the configured range.
    let range = config["ftp"]["passive_ports"].as_str().unwrap();
    let (first, last) = range.split_once('-').unwrap();
    let expected: BTreeSet<u64> = (first.parse().unwrap()..=last.parse().unwrap()).collect();
    let mut published = BTreeSet::new();
    for port in ports
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("pasv-"))
    {
        assert_eq!(
            port["port"], port["targetPort"],
            "passive ports must not be translated"
        );
        published.insert(port["port"].as_u64().unwrap());
    }
    assert_eq!(
        published, expected,
        "Service passive ports vs [ftp] passive_ports"
    );
    assert!(
        config["ftp"]["passive_host"].is_str(),
        "[ftp] passive_host must be set"
    );

    let admin = resource("Service", "spgate-admin");
    assert_eq!(admin["spec"]["type"].as_str(), Some("ClusterIP"));
    assert_eq!(
        admin["spec"]["ports"][0]["port"].as_u64(),
        Some(listen_port(&config, "admin"))
    );
}

#[test]
fn configmap_configuration_passes_check() {
    let deployment = resource("Deployment", "spgate");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let secrets = named(&container["volumeMounts"], "secrets");
    let secret_dir = format!("{}/", text(&secrets["mountPath"], "mountPath"));
    check_offline(
        "kubernetes/spgate.toml",
        &configmap_toml(),
        &[
            (secret_dir.as_str(), "secrets/"),
            ("/var/lib/spgate", "state"),
        ],
    );
}

/// The first ```toml block of the README's "Deployment" section: the systemd example.
fn readme_systemd_toml() -> String {
    let readme = read("README.md");
    let start = readme
        .find("\n## Deployment\n")
        .expect("README: no Deployment section");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let block = &section[section.find("```toml\n").expect("no toml block") + 8..];
    block[..block.find("```").unwrap()].to_owned()
}

const UNIT: &str = "deploy/systemd/spgate.service";
const CREDENTIALS: &str = "/run/credentials/spgate.service/";

#[test]
fn readme_systemd_configuration_passes_check_and_matches_the_unit() {
    let toml = readme_systemd_toml();
    let unit = read(UNIT);
    let config: toml::Table = toml.parse().unwrap();
    assert_eq!(config["state"]["dir"].as_str(), Some("/var/lib/spgate"));
    assert!(unit.contains("\nStateDirectory=spgate\n"));
    for secret in file_secrets(&toml) {
        let name = secret.strip_prefix(CREDENTIALS).unwrap_or_else(|| {
            panic!("README secret {secret} is not in the unit's credentials directory")
        });
        assert!(
            unit.contains(&format!("\nLoadCredential={name}:")),
            "the unit does not load the credential {name}"
        );
    }
    check_offline(
        "README systemd example",
        &toml,
        &[(CREDENTIALS, "credentials/"), ("/var/lib/spgate", "state")],
    );
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = read(UNIT);
    let lines: BTreeSet<&str> = unit.lines().collect();
    for required in [
        "ExecStart=/usr/local/bin/spgate serve --config /etc/spgate/spgate.toml",
        "StateDirectory=spgate",
        "ConfigurationDirectory=spgate",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "Restart=on-failure",
        "TimeoutStopSec=45",
    ] {
        assert!(lines.contains(required), "{UNIT} lacks {required}");
    }
    assert!(
        lines.contains("User=spgate") || lines.contains("DynamicUser=yes"),
        "{UNIT} needs a dedicated user"
    );

    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("note: systemd-analyze is not on the PATH; skipping `systemd-analyze verify`");
        return;
    };
    assert!(version.status.success());
    // verify needs ExecStart's binary to exist: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("spgate.service");
    let unit = unit.replace("/usr/local/bin/spgate", env!("CARGO_BIN_EXE_spgate"));
    std::fs::write(&copy, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // verify only warns about unknown keys and unparsable values: those lines name the file.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("spgate.service"))
        .collect();
    assert!(
        output.status.success() && about_unit.is_empty(),
        "systemd-analyze verify {UNIT}:\n{stderr}"
    );
}

#[test]
fn dockerfile_runs_a_slim_non_root_image() {
    let dockerfile = read("deploy/docker/Dockerfile");
    // Instructions, with continuation lines joined and comments dropped.
    let joined = std::iter::once("")
        .chain(dockerfile.lines())
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let stages: Vec<&str> = joined.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build stage and a run stage");
    let (build, run) = (stages[0], stages[1]);

    // Build: a Rust image no older than Cargo.toml's rust-version, a locked release build.
    let image = build.split_whitespace().next().unwrap();
    let tag = image.strip_prefix("rust:").expect("build stage from rust:");
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let msrv = manifest["package"]["rust-version"].as_str().unwrap();
    let minor = |v: &str| -> u32 { v.split('.').nth(1).map_or(u32::MAX, |m| m.parse().unwrap()) };
    let version = tag.split('-').next().unwrap();
    assert!(
        version == "1" || minor(version) >= minor(msrv),
        "rust:{tag} is older than {msrv}"
    );
    assert!(build.contains("cargo build --release --locked"));

    // Run: Debian slim with ca-certificates only, apt lists removed, a non-root user.
    // The image without its digest (`@sha256:...`, pinning it).
    let base = run.split_whitespace().next().unwrap();
    let base = base.split('@').next().unwrap();
    assert!(
        base.starts_with("debian:") && base.ends_with("-slim"),
        "run stage from {base}"
    );
    let install = run
        .lines()
        .find(|l| l.contains("apt-get install"))
        .expect("the run stage installs ca-certificates");
    let after = &install[install.find("apt-get install").unwrap()..];
    let after = &after[..after.find("&&").unwrap_or(after.len())];
    let packages: Vec<&str> = after
        .split_whitespace()
        .skip(2)
        .filter(|w| !w.starts_with('-'))
        .collect();
    assert_eq!(packages, ["ca-certificates"]);
    assert!(after.contains("--no-install-recommends"));
    assert!(run.contains("rm -rf /var/lib/apt/lists/*"));
    let user = run
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("the run stage sets USER");
    let user = user.trim().split(':').next().unwrap();
    assert!(!matches!(user, "root" | "0"), "USER {user}");
    assert!(run.contains("ENTRYPOINT [\"spgate\"]"));
    assert!(run.contains("CMD [\"serve\", \"--config\", \"/etc/spgate/spgate.toml\"]"));
    assert!(run.contains("VOLUME [\"/var/lib/spgate\"]"));
    let expose = run
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE");
    for port in ["2222", "2121", "9090"] {
        assert!(
            expose.split_whitespace().any(|p| p == port),
            "EXPOSE lacks {port}"
        );
    }
    // The Deployment runs as the image's user.
    let deployment = resource("Deployment", "spgate");
    let run_as = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"].as_u64();
    assert_eq!(run_as.map(|u| u.to_string()).as_deref(), Some(user));
    assert!(
        read(".dockerignore")
            .lines()
            .any(|l| l.trim_matches('/') == "target")
    );
}

/// The cluster example: three instances of one StatefulSet (each its own volume for its upload
/// spool), one PostgreSQL store with the master key and password from the Secret, the PROXY
/// protocol on, the sync folder shared; its configuration passes `spgate check --offline`.
#[test]
fn cluster_example_runs_three_instances_on_one_postgresql_store() {
    let documents = manifests_in("deploy/kubernetes-cluster");
    let find = |kind: &str, name: &str| {
        documents
            .iter()
            .map(|(_, v)| v)
            .find(|v| {
                v["kind"].as_str() == Some(kind) && v["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let set = find("StatefulSet", "spgate");
    assert_eq!(set["spec"]["replicas"].as_u64(), Some(3));
    let template = &set["spec"]["template"]["spec"];
    let container = &template["containers"][0];
    let claims = list(&set["spec"]["volumeClaimTemplates"], "volumeClaimTemplates");
    assert_eq!(text(&claims[0]["metadata"]["name"], "claim"), "state");
    let state = named(&container["volumeMounts"], "state");
    let sync = named(&template["volumes"], "sync");
    assert_eq!(
        text(&sync["persistentVolumeClaim"]["claimName"], "claimName"),
        "spgate-sync"
    );
    let shared = find("PersistentVolumeClaim", "spgate-sync");
    assert_eq!(
        list(&shared["spec"]["accessModes"], "accessModes")[0].as_str(),
        Some("ReadWriteMany")
    );
    assert_eq!(
        find("PodDisruptionBudget", "spgate")["spec"]["maxUnavailable"].as_u64(),
        Some(1)
    );
    let toml = generated_toml("deploy/kubernetes-cluster");
    let table: toml::Table = toml.parse().unwrap();
    assert!(
        table["state"]["database"]
            .as_str()
            .unwrap()
            .starts_with("postgres://")
    );
    assert_eq!(table["sftp"]["proxy_protocol"].as_bool(), Some(true));
    assert_eq!(
        text(&state["mountPath"], "mountPath"),
        table["state"]["dir"].as_str().unwrap()
    );
    // Every secret the configuration reads is a key of the Secret.
    let secret = find("Secret", "spgate-secrets");
    for path in file_secrets(&toml) {
        let key = path.trim_start_matches("/run/secrets/spgate/");
        assert!(
            secret["stringData"][key].is_string(),
            "{path}: not in the Secret"
        );
    }
    check_offline(
        "kubernetes-cluster/spgate.toml",
        &toml,
        &[
            ("/run/secrets/spgate/", "secrets/"),
            ("/var/lib/spgate", "state"),
        ],
    );
}

/// The HAProxy example is a configuration HAProxy accepts, with the PROXY v2 header on every
/// server and on its health checks.
#[test]
fn haproxy_example_is_valid() {
    let path = repo().join("deploy/haproxy/haproxy.cfg");
    let text = read("deploy/haproxy/haproxy.cfg");
    assert!(text.contains("mode tcp") && text.contains("send-proxy-v2 check check-send-proxy"));
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("HAProxy is not installed (Debian's haproxy package; .ci/run installs it)");
    let out = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
