//! The `atrepo` command line: output (human and JSON) and exit codes,
//! snapshotted. Timings are redacted; everything else is deterministic
//! (generated repositories come from fixed seeds).

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn atrepo(args: &[&str]) -> Run {
    ran(Command::new(env!("CARGO_BIN_EXE_atrepo")).args(args).output().unwrap())
}

fn ran(out: std::process::Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Replaces timing lines and fields, which change from run to run.
fn redact(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("elapsed ") {
                "  elapsed    [redacted]".to_owned()
            } else if let Some((key, value)) = line.split_once(": ")
                && (key.ends_with("\"elapsed_secs\"") || key.ends_with("\"throughput_mb_s\""))
            {
                let comma = if value.ends_with(',') { "," } else { "" };
                format!("{key}: 0{comma}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Generates a repository with `atrepo gen` and returns its path and key.
fn generated(
    dir: &Path,
    name: &str,
    records: &str,
    seed: &str,
    extra: &[&str],
) -> (PathBuf, String) {
    let path = dir.join(name);
    let mut args = vec!["gen", "--records", records, "--seed", seed, "--json", "--out"];
    args.push(path.to_str().unwrap());
    args.extend(extra);
    let run = atrepo(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let info: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    (path, info["key"].as_str().unwrap().to_owned())
}

/// A DID document with `did`'s `#atproto` key `did_key`, as a PLC
/// directory serves one.
fn did_document(did: &str, did_key: &str) -> String {
    serde_json::json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "alsoKnownAs": ["at://alice.example.com"],
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": did_key.trim_start_matches("did:key:"),
        }],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                     "serviceEndpoint": "https://pds.example.com"}],
    })
    .to_string()
}

/// `--did-doc`: the key and the DID from a DID document, for `verify` and
/// the reading commands.
#[test]
fn did_documents_give_the_key_and_the_did() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = generated(dir.path(), "doc.car", "30", "7", &[]);
    let path = path.to_str().unwrap();
    let run = atrepo(&["verify", path, "--key", &key, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let did = report["report"]["did"].as_str().unwrap().to_owned();
    let write = |name: &str, text: &str| {
        let doc = dir.path().join(name);
        std::fs::write(&doc, text).unwrap();
        doc.to_str().unwrap().to_owned()
    };
    let good = write("good.json", &did_document(&did, &key));
    let run = atrepo(&["verify", path, "--did-doc", &good]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("signature  valid, {key}")), "{}", run.stdout);
    let run = atrepo(&["get", path, "--did-doc", &good, "app.bsky.feed.post/x"]);
    assert_eq!(run.code, 3, "no such record, but verified up to there: {}", run.stderr);
    let run = atrepo(&["stats", path, "--did-doc", &good]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Another account's document: the repository is not its.
    let other_did =
        write("other-did.json", &did_document("did:plc:otheraccount222222222222", &key));
    let run = atrepo(&["verify", path, "--did-doc", &other_did]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("did:plc:otheraccount222222222222"), "{}", run.stderr);
    let run = atrepo(&["verify", path, "--did-doc", &good, "--did", "did:plc:x"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    // --did is trimmed as --key is, and a malformed one is a usage error
    // (a review found both read as another account's repository, exit 1,
    // "commit is for X, expected X" for a trailing newline).
    let run = atrepo(&["verify", path, "--key", &key, "--did", &format!("{did}\n")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = atrepo(&["verify", path, "--key", &key, "--did", "nope"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("expected --did to be a DID, found \"nope\""), "{}", run.stderr);
    // The document's key did not sign it.
    let sample_key = "did:key:zQ3shknSk1vCcsDeiBDAdwFwU1cjht9C3WvTCUX97aaYNnN1R";
    let other_key = write("other-key.json", &did_document(&did, sample_key));
    let run = atrepo(&["verify", path, "--did-doc", &other_key]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    // A document without an #atproto key, or not JSON: usage, named.
    let no_key = write("no-key.json", &did_document(&did, &key).replace("#atproto\"", "#other\""));
    let run = atrepo(&["verify", path, "--did-doc", &no_key]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("expected an #atproto verification method"), "{}", run.stderr);
    let junk = write("junk.json", "{\"id\": ");
    let run = atrepo(&["verify", path, "--did-doc", &junk]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("invalid JSON at line 1"), "{}", run.stderr);
    let two = write(
        "two.json",
        &format!(
            "{}\n{}",
            did_document(&did, &key),
            did_document("did:plc:otheraccount222222222222", &key)
        ),
    );
    let run = atrepo(&["verify", path, "--did-doc", &two]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("expected one DID document"), "{}", run.stderr);
    // Not with --key.
    let run = atrepo(&["verify", path, "--did-doc", &good, "--key", &key]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    // A key no DID controls (no controller) is not the account's.
    let no_controller = write(
        "no-controller.json",
        &did_document(&did, &key).replace("\"controller\"", "\"note\""),
    );
    let run = atrepo(&["verify", path, "--did-doc", &no_controller]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("found controller none"), "{}", run.stderr);
    // The reading commands and diff apply the document too.
    for doc in [&other_did, &other_key] {
        let run = atrepo(&["stats", path, "--did-doc", doc]);
        assert_eq!(run.code, 1, "{doc}: {}", run.stderr);
        let run = atrepo(&["diff", path, path, "--did-doc", doc]);
        assert_eq!(run.code, 1, "{doc}: {}", run.stderr);
    }
    let run = atrepo(&["diff", path, path, "--did-doc", &good]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // `--did-doc -` reads the document from standard input (as piped from
    // curl); standard input cannot be both the document and the CAR.
    let document = did_document(&did, &key);
    let run = atrepo_stdin(&["verify", path, "--did-doc", "-"], document.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("signature  valid, {key}")), "{}", run.stdout);
    let run = atrepo_stdin(&["stats", path, "--did-doc", "-"], document.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = atrepo_stdin(&["verify", "-", "--did-doc", "-"], document.as_bytes());
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("read only once"), "{}", run.stderr);
}

#[test]
fn verify_the_embedded_sample() {
    let run = atrepo(&["verify"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("verify_sample_human", redact(&run.stdout));
    let run = atrepo(&["verify", "--json"]);
    assert_eq!(run.code, 0);
    insta::assert_snapshot!("verify_sample_json", redact(&run.stdout));
}

#[test]
fn verify_exit_codes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, key) = generated(dir.path(), "r.car", "200", "3", &[]);
    let repo = repo.to_str().unwrap();

    let ok = atrepo(&["verify", repo, "--key", &key]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);

    let no_key = atrepo(&["verify", repo]);
    assert_eq!(no_key.code, 3);
    let unsigned = atrepo(&["verify", repo, "--no-signature", "--json"]);
    assert_eq!(unsigned.code, 0);
    let status: serde_json::Value = serde_json::from_str(&unsigned.stdout).unwrap();
    assert_eq!(status["status"], "verified_without_signature");

    let sample_key = include_str!("../../data/sample.did-key");
    let wrong_key = atrepo(&["verify", repo, "--key", sample_key]);
    assert_eq!(wrong_key.code, 1);

    let bytes = std::fs::read(repo).unwrap();
    let truncated = dir.path().join("truncated.car");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let cut = atrepo(&["verify", truncated.to_str().unwrap(), "--key", &key, "--json"]);
    assert_eq!(cut.code, 2);

    let mut flipped = bytes.clone();
    let at = flipped.len() - 5;
    flipped[at] ^= 1;
    let tampered = dir.path().join("tampered.car");
    std::fs::write(&tampered, &flipped).unwrap();
    let bad = atrepo(&["verify", tampered.to_str().unwrap(), "--key", &key]);
    assert_eq!(bad.code, 1);

    let missing = atrepo(&["verify", "/no/such/file.car", "--no-signature"]);
    assert_eq!(missing.code, 3);

    insta::assert_snapshot!(
        "verify_errors",
        [
            format!("no key: {}", no_key.stderr.trim()),
            format!("wrong key: {}", wrong_key.stderr.trim()),
            format!("truncated: {}", cut.stderr.trim()),
            format!(
                "truncated json: {}",
                cut.stdout.trim().replace(dir.path().to_str().unwrap(), "[dir]")
            ),
            format!("tampered: {}", bad.stderr.trim()),
        ]
        .join("\n")
    );
}

#[test]
fn reading_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = generated(dir.path(), "a.car", "40", "11", &[]);
    let (b, _) = generated(dir.path(), "b.car", "45", "11", &["--order", "shuffled"]);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    let ls = atrepo(&["ls", a, "--collection", "app.bsky.graph.follow"]);
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    insta::assert_snapshot!("ls_follows", ls.stdout);

    let get = atrepo(&["get", a, "app.bsky.actor.profile/self"]);
    assert_eq!(get.code, 0, "{}", get.stderr);
    insta::assert_snapshot!("get_profile", get.stdout);
    let none = atrepo(&["get", a, "app.bsky.feed.post/nonexistent"]);
    assert_eq!(none.code, 3);

    let stats = atrepo(&["stats", a, "--json"]);
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    insta::assert_snapshot!("stats_json", stats.stdout);

    let diff = atrepo(&["diff", a, b]);
    assert_eq!(diff.code, 0, "{}", diff.stderr);
    insta::assert_snapshot!("diff", diff.stdout);

    let out = dir.path().join("a.jsonl");
    let export = atrepo(&["export", a, "--out", out.to_str().unwrap(), "--json"]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), 40);
    // Keys in order whatever serde_json's features (see `crate::sorted`).
    assert!(lines.lines().all(|l| l.starts_with("{\"cid\":")), "{lines}");
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["key"], "app.bsky.actor.profile/self");

    let folder = dir.path().join("records");
    let export = atrepo(&["export", a, "--out", folder.to_str().unwrap()]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert!(folder.join("app.bsky.actor.profile/self.json").is_file());
}

#[test]
fn usage_errors_exit_3() {
    assert_eq!(atrepo(&["verify", "--no-such-flag"]).code, 3);
    assert_eq!(atrepo(&["frobnicate"]).code, 3);
    let help = atrepo(&["--help"]);
    assert_eq!(help.code, 0);
    insta::assert_snapshot!("help", help.stdout);
}

/// Runs `atrepo` with `input` on its standard input.
fn atrepo_stdin(args: &[&str], input: &[u8]) -> Run {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_atrepo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from a thread: the child may fill its output pipes first.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may stop reading early (`get`); a broken pipe is fine.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    ran(out)
}

/// `writer`'s repository signed by a fixed test key at a fixed rev,
/// written to `dir/name`: its path and its bytes.
fn signed_car_file(
    writer: &atrepo::writer::RepoWriter,
    dir: &Path,
    name: &str,
) -> (String, Vec<u8>) {
    use atrepo::verify::{Curve, SigningKey, Tid};
    let key = SigningKey::from_seed(Curve::K256, b"cli test repositories").unwrap();
    let rev = Tid::from_parts(1_700_000_000_000_000, 0).unwrap();
    let car = writer.to_car(&key, rev).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &car).unwrap();
    (path.to_str().unwrap().to_owned(), car)
}

/// Two keys pointing to one record, with another key between them (real
/// repositories have such repeats): the second key's record comes from a
/// file read again or, on standard input, from the kept records.
#[test]
fn reading_commands_give_repeated_records_their_bytes_from_files_and_stdin() {
    use atrepo::verify::drisl::Value;
    let mut writer = atrepo::writer::RepoWriter::new("did:plc:clirepeats22222222222222");
    let like = |subject: &str| {
        Value::Map(
            [
                ("$type".to_owned(), Value::String("app.bsky.feed.like".into())),
                ("subject".to_owned(), Value::String(subject.into())),
            ]
            .into_iter()
            .collect(),
        )
    };
    let a = writer.insert_value("app.bsky.feed.like/3jzfcijpj2z2a", &like("one")).unwrap();
    writer.insert_value("app.bsky.feed.like/3jzfcijpj2z2b", &like("two")).unwrap();
    let c = writer.insert_value("app.bsky.feed.like/3jzfcijpj2z2c", &like("one")).unwrap();
    assert_eq!(a, c);
    let dir = tempfile::tempdir().unwrap();
    let (path, car) = signed_car_file(&writer, dir.path(), "repeats.car");
    let path = path.as_str();

    // `/dev/stdin` is a pipe here: a path, but a stream (it cannot be
    // mapped or read again).
    let inputs: &[&str] =
        if cfg!(target_os = "linux") { &[path, "-", "/dev/stdin"] } else { &[path, "-"] };
    for &input in inputs {
        let run = |args: &[&str]| {
            let mut full = vec![args[0], input];
            full.extend(&args[1..]);
            let run = atrepo_stdin(&full, &car);
            assert_eq!(run.code, 0, "{input} {args:?}: {}", run.stderr);
            run
        };
        // Verified whole: the repeat is not mistaken for a missing record.
        run(&["verify", "--no-signature"]);
        let got = run(&["get", "app.bsky.feed.like/3jzfcijpj2z2c"]);
        let record: serde_json::Value = serde_json::from_str(&got.stdout).unwrap();
        assert_eq!(record["subject"], "one", "{input}");

        let out = dir.path().join("likes.jsonl");
        run(&["export", "--out", out.to_str().unwrap()]);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let subjects: Vec<&str> =
            lines.iter().map(|l| l["record"]["subject"].as_str().unwrap()).collect();
        assert_eq!(subjects, ["one", "two", "one"], "{input}");

        let stats = run(&["stats", "--json"]);
        let stats: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
        let min = stats["record_bytes"]["min"].as_u64().unwrap();
        assert!(min > 0, "{input}: a repeated record counted as {min} bytes");
    }
}

/// A record shared by enough keys that reading it again for each would pass
/// the 256 MiB budget for such reads: the repository verifies, and a
/// command that needs the bytes past the budget fails with a limit (exit
/// 2) naming the key, not with a usage or I/O error (exit 3).
#[test]
fn a_record_shared_past_the_reread_budget_is_a_limit() {
    use atrepo::verify::drisl::Value;
    let mut writer = atrepo::writer::RepoWriter::new("did:plc:clisharedrecord2222222222");
    let big = Value::Map(
        [
            ("$type".to_owned(), Value::String("app.example.big".into())),
            ("data".to_owned(), Value::Bytes(vec![7; 900_000])),
        ]
        .into_iter()
        .collect(),
    );
    // 320 keys: 319 reads again of 900 KB are 287 MB, past 256 MiB.
    for n in 0..320 {
        writer.insert_value(&format!("app.example.big/k{n:04}"), &big).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = signed_car_file(&writer, dir.path(), "shared.car");
    let path = path.as_str();

    let verified = atrepo(&["verify", path, "--no-signature"]);
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    for args in [vec!["stats", path], vec!["get", path, "app.example.big/k0319"]] {
        let run = atrepo(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("\"app.example.big/k0"), "{}", run.stderr);
        assert!(run.stderr.contains("not kept"), "{}", run.stderr);
    }
}

/// A signed repository of `g`'s records plus `extra`, written with `rules`,
/// as a CAR file under `dir`; its commit re-signed as version 2 (no `rev`)
/// if `v2`.
fn loosened_repo(
    dir: &Path,
    name: &str,
    rules: atrepo::mst::KeyRules,
    extra: &[(&str, &[u8])],
    v2: bool,
) -> (PathBuf, String) {
    use atrepo::car::{DAG_CBOR, Header, blessed_cid, encode};
    use atrepo::generate::{GenOptions, generate};
    use atrepo::verify::drisl::Encoder;
    let g = generate(&GenOptions::default().records(20).seed(5)).unwrap();
    let mut writer = g.writer.clone().keys(rules);
    for (key, record) in extra {
        writer.insert_unchecked(key, record.to_vec()).unwrap();
    }
    writer.insert("app.bsky.feed.post/3kbt4gmumu222", post()).unwrap();
    let built = writer.build(&g.key, g.rev).unwrap();
    let mut blocks = built.blocks.clone();
    let mut root = built.commit_cid;
    if v2 {
        // {did, data, prev, version: 2}, canonical order, signed; then with
        // `sig`.
        let commit = |sig: Option<&[u8]>| {
            let mut e = Encoder::new();
            e.map(4 + u64::from(sig.is_some())).text("did").text(&g.did);
            if let Some(sig) = sig {
                e.text("sig").bytes(sig);
            }
            e.text("data").link(built.commit.data()).text("prev").null();
            e.text("version").uint(2);
            e.into_bytes()
        };
        let sig = g.key.sign(&commit(None)).unwrap();
        let bytes = commit(Some(&sig));
        root = blessed_cid(DAG_CBOR, &bytes);
        blocks[0] = (root, bytes.into());
    }
    let car = encode(&Header::new(vec![root]).unwrap(), blocks.iter().map(|(c, b)| (c, &b[..])));
    let path = dir.join(name);
    std::fs::write(&path, car).unwrap();
    (path, g.key.public_key().to_did_key())
}

fn post() -> Vec<u8> {
    let mut e = atrepo::verify::drisl::Encoder::new();
    e.map(2).text("text").text("hello").text("$type").text("app.bsky.feed.post");
    e.into_bytes()
}

/// The switches that loosen the checks for historical and third-party
/// repositories, and resize the CAR limits: each repository fails by
/// default, with the error naming the rule, and verifies with its switch;
/// the reading commands take the same switches.
#[test]
fn switches_for_historical_and_third_party_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let strict = atrepo::mst::KeyRules::Strict;
    let lax = atrepo::mst::KeyRules::Lax;
    // Each case: what it is, the repository, its switch, what the error
    // says without it, and its exit code (a malformed commit or record 2,
    // a broken MST rule 1).
    let cases = [
        (
            "version 2 commit",
            loosened_repo(dir.path(), "v2.car", strict, &[], true),
            "--allow-v2",
            "expected commit version 3, found 2",
            2,
        ),
        (
            "historical path",
            loosened_repo(dir.path(), "path.car", lax, &[("Chat/abc", &post())], false),
            "--lax-paths",
            "invalid key \"Chat/abc\"",
            1,
        ),
        (
            "record with unsorted keys",
            // {"b": 1, "a": 2}
            loosened_repo(
                dir.path(),
                "record.car",
                strict,
                &[("com.example.thing/abc", b"\xa2\x61b\x01\x61a\x02")],
                false,
            ),
            "--opaque-records",
            "com.example.thing/abc",
            2,
        ),
    ];
    for (case, (path, key), switch, said, code) in &cases {
        let path = path.to_str().unwrap();
        let run = atrepo(&["verify", path, "--key", key]);
        assert_eq!(run.code, *code, "{case}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(said), "{case}: {}", run.stderr);
        let run = atrepo(&["verify", path, "--key", key, switch]);
        assert_eq!(run.code, 0, "{case}: {}", run.stderr);
        // The generated 20, the post, and the case's own.
        let records = if *switch == "--allow-v2" { 21 } else { 22 };
        assert!(run.stdout.contains(&format!("records    {records} ")), "{case}: {}", run.stdout);
        let run = atrepo(&["ls", path, switch]);
        assert_eq!(run.code, 0, "{case}: {}", run.stderr);
        assert_eq!(run.stdout.lines().count(), records, "{case}");
    }
    let v2 =
        atrepo(&["verify", cases[0].1.0.to_str().unwrap(), "--key", &cases[0].1.1, "--allow-v2"]);
    assert!(v2.stdout.contains("version 2"), "{}", v2.stdout);

    // `get` and `export` decode the records they print: the record the
    // switch let through fails there, as a malformed record named by its
    // key (exit 2; a review found exit 3 and no key).
    let record_car = cases[2].1.0.to_str().unwrap();
    let out = dir.path().join("opaque.jsonl");
    for args in [
        vec!["get", record_car, "com.example.thing/abc", "--opaque-records"],
        vec!["export", record_car, "--out", out.to_str().unwrap(), "--opaque-records"],
    ] {
        let run = atrepo(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("record \"com.example.thing/abc\""), "{}", run.stderr);
    }
    assert!(!out.exists());
    // A record that is no map at all: decodable, but not a record.
    let extra: [(&str, &[u8]); 1] = [("com.example.thing/str", b"\x61x")];
    let (text_car, _) = loosened_repo(dir.path(), "text.car", strict, &extra, false);
    let text_car = text_car.to_str().unwrap();
    let run = atrepo(&["get", text_car, "com.example.thing/str", "--opaque-records"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("a record must be a map"), "{}", run.stderr);

    // `diff` takes them too.
    let v2_path = cases[0].1.0.to_str().unwrap();
    let run = atrepo(&["diff", v2_path, v2_path]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = atrepo(&["diff", v2_path, v2_path, "--allow-v2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // The CAR limits, down and back up.
    let (path, key) = &cases[0].1;
    let path = path.to_str().unwrap();
    let run = atrepo(&["verify", path, "--key", key, "--allow-v2", "--max-blocks", "10"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("10"), "{}", run.stderr);
    let run = atrepo(&["verify", path, "--key", key, "--allow-v2", "--max-car-mib", "0"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = atrepo(&["verify", path, "--key", key, "--allow-v2", "--max-blocks", "100"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// A block over the default 2 MiB cap is a limit (exit 2); no
/// specification fixes a cap for repositories, so `--max-block-mib`
/// raises it.
#[test]
fn max_block_mib_raises_the_block_cap() {
    use atrepo::verify::drisl::Value;
    let mut writer = atrepo::writer::RepoWriter::new("did:plc:clibigblock22222222222222");
    let big =
        Value::Map([("data".to_owned(), Value::Bytes(vec![3; 2_200_000]))].into_iter().collect());
    writer.insert_value("app.example.big/self", &big).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, car) = signed_car_file(&writer, dir.path(), "big.car");
    let path = path.as_str();

    let run = atrepo(&["verify", path, "--no-signature"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("limit 2097152"), "{}", run.stderr);
    let run = atrepo(&["verify", path, "--no-signature", "--max-block-mib", "3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = atrepo(&["get", path, "app.example.big/self", "--max-block-mib", "3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Never above the whole CAR's cap: a small CAR whose first section
    // claims 1.5 MiB is refused for that section at 1 MiB.
    let mut claims = car[..usize::from(car[0]) + 1].to_vec();
    // The varint of 1,572,864.
    claims.extend([0x80, 0x80, 0x60]);
    claims.extend(&car[car.len() - 100..]);
    let small = dir.path().join("claims.car");
    std::fs::write(&small, &claims).unwrap();
    let small = small.to_str().unwrap();
    let run = atrepo(&["verify", small, "--no-signature", "--max-block-mib", "3"]);
    assert!(!run.stderr.contains("limit 1048576"), "{}", run.stderr);
    let args = ["verify", small, "--no-signature", "--max-block-mib", "3", "--max-car-mib", "1"];
    let run = atrepo(&args);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("section length limit"), "{}", run.stderr);
    assert!(run.stderr.contains("limit 1048576"), "{}", run.stderr);
}

/// A repository whose only MST node is wider than the default entry cap
/// (230 keys chosen to share layer 0, as only a writer picking its keys
/// gets): every repository command refuses it as a limit (exit 2), and
/// takes it with `--max-node-entries`.
#[test]
fn max_node_entries_raises_the_entry_cap() {
    let mut writer = atrepo::writer::RepoWriter::new("did:plc:cliwidenode2222222222222");
    let keys = (0u32..)
        .map(|n| format!("app.bsky.feed.post/wide{n:04}"))
        .filter(|k| atrepo::mst::layer(k.as_bytes()) == 0)
        .take(230);
    for key in keys {
        writer.insert(&key, post()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, car) = signed_car_file(&writer, dir.path(), "wide.car");
    let path = path.as_str();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let key = "app.bsky.feed.post/wide0000";
    let commands: [&[&str]; 6] = [
        &["verify", path, "--no-signature"],
        &["ls", path],
        &["get", path, key],
        &["stats", path],
        &["export", path, "--out", out],
        &["diff", path, path],
    ];
    for args in commands {
        let run = atrepo(args);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("has 230 entries: limit 200"), "{args:?}: {}", run.stderr);
        let wide = [args, &["--max-node-entries", "230"]].concat();
        let run = atrepo(&wide);
        assert_eq!(run.code, 0, "{wide:?}: {}", run.stderr);
    }
    assert!(Path::new(out).join("app.bsky.feed.post").is_dir());
    let args = ["verify", "-", "--no-signature", "--max-node-entries", "230"];
    assert_eq!(atrepo_stdin(&args, &car).code, 0);
    let args = ["verify", "-", "--no-signature", "--max-node-entries", "229"];
    let run = atrepo_stdin(&args, &car);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("has 230 entries: limit 229"), "{}", run.stderr);
    assert_eq!(atrepo(&["verify", path, "--max-node-entries", "0"]).code, 3);

    // `diff --changed-only` reads only the changed part of two trees: a
    // second wide repository, one key more, so that the diff itself reads
    // the wide nodes.
    let one_more = (230u32..)
        .map(|n| format!("app.bsky.feed.post/wide{n:04}"))
        .filter(|k| atrepo::mst::layer(k.as_bytes()) == 0)
        .find(|k| writer.remove(k).is_none())
        .unwrap();
    writer.insert(&one_more, post()).unwrap();
    let (after, _) = signed_car_file(&writer, dir.path(), "wider.car");
    let run = atrepo(&["diff", path, &after, "--changed-only"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("entries: limit 200"), "{}", run.stderr);
    let run = atrepo(&["diff", path, &after, "--changed-only", "--max-node-entries", "231"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&one_more), "{}", run.stdout);
}

/// A repository signed an hour ahead of this machine's clock: refused as
/// a verification failure (exit 1) by default, taken with
/// `--max-rev-ahead`; a rev changed under the old signature is a bad
/// signature whatever the switch.
#[test]
fn max_rev_ahead_widens_the_clock_check() {
    use atrepo::verify::{Curve, SigningKey, Tid};
    let mut writer = atrepo::writer::RepoWriter::new("did:plc:cliahead222222222222222222");
    writer.insert("app.bsky.feed.post/3kbt4gmumu222", post()).unwrap();
    let key = SigningKey::from_seed(Curve::K256, b"cli ahead of the clock").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let micros = u64::try_from(now.as_micros()).unwrap() + 3_600_000_000;
    let rev = Tid::from_parts(micros, 0).unwrap();
    let built = writer.build(&key, rev).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ahead.car");
    std::fs::write(&path, writer.to_car(&key, rev).unwrap()).unwrap();
    let path = path.to_str().unwrap();
    let did_key = key.public_key().to_did_key();

    let run = atrepo(&["verify", path, "--key", &did_key]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("ahead of the clock"), "{}", run.stderr);
    let run = atrepo(&["verify", path, "--key", &did_key, "--max-rev-ahead", "7200"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = atrepo(&["ls", path, "--key", &did_key, "--max-rev-ahead", "7200"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // `diff --changed-only` checks the commits alone, the rev included.
    let run = atrepo(&["diff", path, path, "--changed-only", "--key", &did_key]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("ahead of the clock"), "{}", run.stderr);
    let args = ["diff", path, path, "--changed-only", "--key", &did_key, "--max-rev-ahead", "7200"];
    assert_eq!(atrepo(&args).code, 0);

    // The rev an hour later still, under the same signature.
    let later = Tid::from_parts(micros + 3_600_000_000, 0).unwrap().to_string();
    let mut commit = built.blocks[0].1.to_vec();
    let old = rev.to_string();
    let at = commit.windows(old.len()).position(|w| w == old.as_bytes()).unwrap();
    commit[at..at + old.len()].copy_from_slice(later.as_bytes());
    let cid = atrepo::car::blessed_cid(atrepo::car::DAG_CBOR, &commit);
    let mut blocks = built.blocks.clone();
    blocks[0] = (cid, commit.into());
    let header = atrepo::car::Header::new(vec![cid]).unwrap();
    let car = atrepo::car::encode(&header, blocks.iter().map(|(c, b)| (c, &b[..])));
    let tampered = dir.path().join("tampered.car");
    std::fs::write(&tampered, car).unwrap();
    let tampered = tampered.to_str().unwrap();
    for extra in [&[][..], &["--max-rev-ahead", "99999"][..]] {
        let run = atrepo(&[&["verify", tampered, "--key", &did_key][..], extra].concat());
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains("signature"), "{}", run.stderr);
    }
}

/// A record key longer than a file name may be (record keys may have 512
/// characters): `export` to a folder says so and leaves nothing; to a
/// `.jsonl` file it works.
#[test]
fn export_names_a_record_key_too_long_for_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let rkey = "k".repeat(300);
    let strict = atrepo::mst::KeyRules::Strict;
    let key = format!("app.bsky.feed.post/{rkey}");
    let (path, _) = loosened_repo(dir.path(), "long.car", strict, &[(&key, &post())], false);
    let path = path.to_str().unwrap();
    let out = dir.path().join("out");
    let run = atrepo(&["export", path, "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("is 305 bytes, more than the 255"), "{}", run.stderr);
    assert!(run.stderr.contains("export to a .jsonl file instead"), "{}", run.stderr);
    assert!(!out.exists());
    let lines = dir.path().join("out.jsonl");
    let run = atrepo(&["export", path, "--out", lines.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(std::fs::read_to_string(&lines).unwrap().contains(&rkey));
}

/// A lax path may be `..` or `.`: `export` to a folder refuses to turn it
/// into a file name (it would write outside the folder), and writes
/// nothing outside.
#[test]
fn export_keeps_lax_paths_inside_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let lax = atrepo::mst::KeyRules::Lax;
    let (path, _) = loosened_repo(dir.path(), "dots.car", lax, &[("../config", &post())], false);
    let out = dir.path().join("out");
    let run =
        atrepo(&["export", path.to_str().unwrap(), "--lax-paths", "--out", out.to_str().unwrap()]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("\"../config\" cannot be written"), "{}", run.stderr);
    assert!(!dir.path().join("config.json").exists());
    // Nothing of the refused export is left, not even the folder.
    assert!(!out.exists());
    // As JSON Lines it is only a key.
    let lines = dir.path().join("out.jsonl");
    let run = atrepo(&[
        "export",
        path.to_str().unwrap(),
        "--lax-paths",
        "--out",
        lines.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// `export` writes under a temporary name and moves it to `--out` only
/// once the repository has verified whole: a repository that fails late
/// (a record flipped near the end) leaves nothing, as a folder or as JSON
/// Lines, where records it wrote before the failure would pass for an
/// export. A folder export never writes into a folder that holds files.
#[test]
fn export_leaves_nothing_unless_the_repository_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, key) = generated(dir.path(), "r.car", "200", "3", &[]);
    let mut bytes = std::fs::read(&repo).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 1;
    let tampered = dir.path().join("tampered.car");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    for target in [out.join("records"), out.join("records.jsonl")] {
        let target = target.to_str().unwrap();
        let run = atrepo(&["export", tampered.to_str().unwrap(), "--key", &key, "--out", target]);
        assert_eq!(run.code, 1, "{target}: {}", run.stderr);
        assert!(names(&out).is_empty(), "{target}: left {:?}", names(&out));
    }
    // A .jsonl file there already is kept as it was.
    let lines = out.join("old.jsonl");
    std::fs::write(&lines, "kept\n").unwrap();
    let run = atrepo(&[
        "export",
        tampered.to_str().unwrap(),
        "--key",
        &key,
        "--out",
        lines.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&lines).unwrap(), "kept\n");
    assert_eq!(names(&out), ["old.jsonl"]);
    std::fs::remove_file(&lines).unwrap();

    // Verified: the folder appears whole, also in place of an empty one.
    let records = out.join("records");
    std::fs::create_dir(&records).unwrap();
    let run = atrepo(
        &["export", repo.to_str().unwrap(), "--key", &key, "--out"]
            .into_iter()
            .chain([records.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(names(&out), ["records"]);
    let posts = names(&records.join("app.bsky.feed.post")).len();
    assert!(posts > 10, "{posts} posts");

    // A second export into it is refused, and the first one is kept.
    let again = atrepo(&[
        "export",
        repo.to_str().unwrap(),
        "--key",
        &key,
        "--out",
        records.to_str().unwrap(),
    ]);
    assert_eq!(again.code, 3, "{}", again.stdout);
    assert!(again.stderr.contains("exists and is not empty"), "{}", again.stderr);
    assert_eq!(names(&records.join("app.bsky.feed.post")).len(), posts);
    assert_eq!(names(&out), ["records"]);

    // A link to an empty folder: the export goes into the folder it
    // points to, and the link stays.
    #[cfg(unix)]
    {
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let link = out.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let run = atrepo(&[
            "export",
            repo.to_str().unwrap(),
            "--key",
            &key,
            "--out",
            link.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(names(&target.join("app.bsky.feed.post")).len(), posts);
        assert!(names(&target).iter().all(|n| !n.starts_with('.')), "{:?}", names(&target));
    }
}

/// Output that cannot be written: a reader that went away is not an error
/// (exit 0), a full disk is one (exit 3, said on stderr), and no command
/// panics on either (a review found `get`, `stats --json`, `diff --json`
/// and `export` exiting 101 with a backtrace).
#[cfg(target_os = "linux")]
#[test]
fn unwritable_output_is_an_error_or_nothing_but_never_a_panic() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let (repo, key) = generated(dir.path(), "r.car", "300", "5", &[]);
    let repo = repo.to_str().unwrap();
    let key_of_first = {
        let run = atrepo(&["ls", repo, "--key", &key]);
        run.stdout.lines().next().unwrap().split_whitespace().next().unwrap().to_owned()
    };
    let out = dir.path().join("out.jsonl");
    let commands: [Vec<&str>; 5] = [
        vec!["get", repo, &key_of_first],
        vec!["stats", repo, "--json"],
        vec!["diff", repo, repo, "--json"],
        vec!["export", repo, "--out", out.to_str().unwrap()],
        vec!["verify", repo, "--key", &key, "--json"],
    ];
    // The reader closes its end before the command writes; or stdout is
    // a full disk.
    let closed_pipe = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_atrepo"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        ran(child.wait_with_output().unwrap())
    };
    let full_disk = |args: &[&str]| {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        ran(Command::new(env!("CARGO_BIN_EXE_atrepo")).args(args).stdout(full).output().unwrap())
    };
    for args in &commands {
        let _ = std::fs::remove_file(&out);
        let run = closed_pipe(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        let _ = std::fs::remove_file(&out);
        let run = full_disk(args);
        // An export is in place before its summary is written: that it
        // could not be is a warning, not a failure (a retry would find the
        // export there).
        let code = if args[0] == "export" { 0 } else { 3 };
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("No space left on device") && !run.stderr.contains("panicked"),
            "{}",
            run.stderr
        );
    }
    // A failure stays a failure when its JSON line cannot be written (a
    // reader gone, a full disk): the line is not the outcome.
    let other = generated(dir.path(), "other.car", "5", "6", &[]).1;
    let args = ["verify", repo, "--key", &other, "--json"];
    assert_eq!(closed_pipe(&args).code, 1);
    let run = full_disk(&args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("signature"), "{}", run.stderr);
}

/// `diff` reads only the subtrees that differ, but what it lists it checks:
/// a listed record missing from its CAR fails it (exit 1; a review found
/// it listed with exit 0), and with `--key` both commits' signatures are
/// checked.
#[test]
fn diff_checks_the_records_it_lists_and_the_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (a, key) = generated(dir.path(), "a.car", "40", "11", &[]);
    let (b, _) = generated(dir.path(), "b.car", "45", "11", &[]);
    let (_, other) = generated(dir.path(), "c.car", "5", "12", &[]);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    let run = atrepo(&["diff", a, b, "--json", "--key", &key]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let diff: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let created = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["before"].is_null())
        .and_then(|c| c["after"].as_str())
        .unwrap();
    let created = cid::Cid::try_from(created).unwrap();

    // The after CAR without that record's block.
    let bytes = std::fs::read(b).unwrap();
    let slice = atrepo::car::CarSlice::new(&bytes).unwrap();
    let header = slice.header().clone();
    let kept: Vec<(cid::Cid, Vec<u8>)> = slice
        .map(Result::unwrap)
        .filter(|f| f.cid != created)
        .map(|f| (f.cid, f.data.to_vec()))
        .collect();
    let without = dir.path().join("b-without.car");
    std::fs::write(&without, atrepo::car::encode(&header, kept.iter().map(|(c, d)| (c, &d[..]))))
        .unwrap();
    let run = atrepo(&["diff", a, without.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("is missing") && run.stderr.contains(&created.to_string()));

    let run = atrepo(&["diff", a, b, "--key", &other]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("signature"), "{}", run.stderr);

    // Repositories of different accounts: said first, whatever follows.
    let (c, _) = generated(dir.path(), "c2.car", "5", "12", &[]);
    let run = atrepo(&["diff", a, c.to_str().unwrap(), "--key", &key]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let warning = run.stderr.find("different accounts").unwrap();
    assert!(warning < run.stderr.find("signature").unwrap(), "{}", run.stderr);

    // A listed record that is not valid DRISL (unsorted keys): malformed,
    // unless records are opaque.
    let strict = atrepo::mst::KeyRules::Strict;
    let (before, _) = loosened_repo(dir.path(), "lb.car", strict, &[], false);
    let unsorted: &[u8] = b"\xa2\x61b\x01\x61a\x02";
    let extra = [("com.example.thing/abc", unsorted)];
    let (after, _) = loosened_repo(dir.path(), "la.car", strict, &extra, false);
    let (before, after) = (before.to_str().unwrap(), after.to_str().unwrap());
    let run = atrepo(&["diff", before, after]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("com.example.thing/abc"), "{}", run.stderr);
    let run = atrepo(&["diff", before, after, "--opaque-records"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("1 created, 0 updated, 0 deleted"), "{}", run.stdout);
}

/// A defect in what both repositories share (an invalid record listed in
/// neither diff): `diff` verifies both whole first and fails (a review
/// found it exiting 0, the shared parts never read); `--changed-only`
/// skips them and says so.
#[test]
fn diff_verifies_both_repositories_whole_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let strict = atrepo::mst::KeyRules::Strict;
    let unsorted: &[u8] = b"\xa2\x61b\x01\x61a\x02";
    let valid: &[u8] = b"\xa1\x61a\x01";
    let shared = [("com.example.thing/abc", unsorted)];
    let (before, key) = loosened_repo(dir.path(), "b.car", strict, &shared, false);
    let more = [shared[0], ("com.example.thing/new", valid)];
    let (after, _) = loosened_repo(dir.path(), "a.car", strict, &more, false);
    let (before, after) = (before.to_str().unwrap(), after.to_str().unwrap());
    let run = atrepo(&["diff", before, after, "--key", &key]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(&format!("verifying {before}")), "{}", run.stderr);
    assert!(run.stderr.contains("com.example.thing/abc"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let car = std::fs::read(before).unwrap();
    let run = atrepo_stdin(&["diff", "-", after, "--key", &key], &car);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    let run = atrepo(&["diff", before, after, "--key", &key, "--changed-only"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.ends_with("1 created, 0 updated, 0 deleted (only the changes checked)\n"),
        "{}",
        run.stdout
    );
    let run = atrepo(&["diff", before, after, "--changed-only", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["verified_whole"], false);
    assert_eq!(json["signatures_checked"], false);
    // Valid repositories: the same changes either way.
    let (a, _) = generated(dir.path(), "x.car", "40", "11", &[]);
    let (b, _) = generated(dir.path(), "y.car", "45", "11", &[]);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let whole = atrepo(&["diff", a, b]);
    let changed = atrepo(&["diff", a, b, "--changed-only"]);
    assert_eq!((whole.code, changed.code), (0, 0), "{}{}", whole.stderr, changed.stderr);
    assert!(whole.stdout.ends_with("deleted (signatures not checked)\n"), "{}", whole.stdout);
    assert_eq!(
        whole.stdout.replace(" (signatures not checked)", ""),
        changed.stdout.replace(" (only the changes checked, signatures not checked)", "")
    );
}

/// `get` prints its record only once the whole repository has verified:
/// a review found it printing an early key's record, exit 0, from a
/// repository broken further on, because it stopped at the key.
#[test]
fn get_prints_nothing_unless_the_repository_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, key) = generated(dir.path(), "r.car", "200", "3", &[]);
    let repo = repo.to_str().unwrap();
    let first = "app.bsky.actor.profile/self";
    let run = atrepo(&["get", repo, first, "--key", &key]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("app.bsky.actor.profile"), "{}", run.stdout);
    let mut bytes = std::fs::read(repo).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 1;
    let tampered = dir.path().join("tampered.car");
    std::fs::write(&tampered, &bytes).unwrap();
    let tampered = tampered.to_str().unwrap();
    let run = atrepo(&["get", tampered, first, "--key", &key]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let run = atrepo_stdin(&["get", "-", first, "--key", &key], &bytes);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");

    // The record asked for does not decode (unsorted keys, let through by
    // --opaque-records), and a later block is broken: the broken
    // repository is what is said (exit 1), not the record (exit 2).
    let strict = atrepo::mst::KeyRules::Strict;
    let unsorted: &[u8] = b"\xa2\x61b\x01\x61a\x02";
    let last: &[u8] = b"\xa1\x61a\x01";
    let extra = [("com.example.thing/abc", unsorted), ("com.example.thing/zzz", last)];
    let (path, key) = loosened_repo(dir.path(), "odd.car", strict, &extra, false);
    let path = path.to_str().unwrap();
    let args = ["get", path, "com.example.thing/abc", "--key", &key, "--opaque-records"];
    let run = atrepo(&args);
    assert_eq!(run.code, 2, "{}", run.stderr);
    // Broken after every block the walk needs: one more section, a copy
    // of the last with a byte of its data flipped.
    let mut bytes = std::fs::read(path).unwrap();
    let last = atrepo::car::CarSlice::new(&bytes).unwrap().last().unwrap().unwrap();
    let mut section = last.cid.to_bytes();
    section.extend_from_slice(last.data);
    *section.last_mut().unwrap() ^= 1;
    let len = u8::try_from(section.len()).unwrap();
    assert!(len < 128, "a one-byte varint length");
    bytes.push(len);
    bytes.extend_from_slice(&section);
    std::fs::write(path, &bytes).unwrap();
    let run = atrepo(&args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("hash"), "{}", run.stderr);
}

/// `diff` maps regular files (an index in memory, the blocks in the file)
/// and reads `-` or a pipe whole, up to `--max-car-mib`: both give the
/// same changes, and a block that does not hash to its CID fails either
/// way (exit 1). Before, `-` was refused as a file name.
#[test]
fn diff_reads_files_and_standard_input_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = generated(dir.path(), "a.car", "40", "11", &[]);
    let (b, _) = generated(dir.path(), "b.car", "45", "11", &["--order", "shuffled"]);
    let (a_bytes, b_bytes) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let files = atrepo(&["diff", a, b, "--json"]);
    assert_eq!(files.code, 0, "{}", files.stderr);
    assert!(files.stdout.contains("\"created\": 5"), "{}", files.stdout);
    for (args, input) in [(["diff", "-", b], &a_bytes), (["diff", a, "-"], &b_bytes)] {
        let run = atrepo_stdin(&[&args[..], &["--json"]].concat(), input);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stdout, files.stdout);
    }

    let run = atrepo_stdin(&["diff", "-", "-"], &a_bytes);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("read only once"), "{}", run.stderr);

    // Over --max-car-mib on standard input: a limit, read no further.
    let (big, _) = generated(dir.path(), "big.car", "6000", "11", &[]);
    let big_bytes = std::fs::read(&big).unwrap();
    assert!(big_bytes.len() > 1 << 20);
    let run = atrepo_stdin(&["diff", "-", a, "--max-car-mib", "1"], &big_bytes);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("limit"), "{}", run.stderr);

    // A flipped byte in the commit, which diff reads first (a review found
    // it read unhashed and reported as a file changed, exit 3), or in the
    // last block; mapped or read; whole or --changed-only.
    let commit = atrepo::car::CarSlice::new(&b_bytes).unwrap().next().unwrap().unwrap();
    let at = b_bytes.windows(commit.data.len()).position(|w| w == commit.data).unwrap() + 3;
    let mut flipped = b_bytes.clone();
    flipped[at] ^= 1;
    let tampered = dir.path().join("commit.car");
    std::fs::write(&tampered, &flipped).unwrap();
    let tampered = tampered.to_str().unwrap();
    for extra in [&[][..], &["--changed-only"][..]] {
        let run = atrepo(&[&["diff", a, tampered][..], extra].concat());
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains("hash mismatch"), "{}", run.stderr);
        let run = atrepo_stdin(&[&["diff", a, "-"][..], extra].concat(), &flipped);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains("hash mismatch"), "{}", run.stderr);
    }

    // A flipped byte in the last block, mapped or read.
    let mut flipped = b_bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let tampered = dir.path().join("tampered.car");
    std::fs::write(&tampered, &flipped).unwrap();
    let run = atrepo(&["diff", a, tampered.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("hash"), "{}", run.stderr);
    let run = atrepo_stdin(&["diff", a, "-"], &flipped);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("hash"), "{}", run.stderr);
}

/// A review found an export to `.jsonl` always mode 0600 (the temporary
/// file's), also when it replaced a file, and an export into an empty
/// folder refused as "not empty" once a killed export had left its hidden
/// folder there, without naming it.
#[cfg(unix)]
#[test]
fn export_file_modes_and_leftovers() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = generated(dir.path(), "r.car", "30", "13", &[]);
    let repo = repo.to_str().unwrap();
    let out = dir.path().join("r.jsonl");
    let run = atrepo(&["export", repo, "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // What any new file gets here (0666 less the umask).
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), mode(&plain));
    // A file replaced keeps its permissions, whatever the umask.
    for kept in [0o640, 0o604] {
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(kept)).unwrap();
        let run = atrepo(&["export", repo, "--out", out.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(mode(&out), kept);
    }

    let folder = dir.path().join("mounted");
    std::fs::create_dir_all(folder.join(".atrepo-export.left/app.bsky.feed.post")).unwrap();
    let run = atrepo(&["export", repo, "--out", folder.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains(".atrepo-export.left") && run.stderr.contains("remove it"));
    std::fs::remove_dir_all(folder.join(".atrepo-export.left")).unwrap();
    let run = atrepo(&["export", repo, "--out", folder.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(folder.join("app.bsky.actor.profile/self.json").exists());
}
