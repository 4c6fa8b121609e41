//! `loanwire bench` end to end, on a tiny load: it must start both servers, send correctly signed
//! unique calls, verify every acknowledged call in the inbox, and write its JSON and chart.

use std::process::Command;

#[test]
fn a_small_bench_run_verifies_every_acknowledged_call_and_writes_json_and_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let png = dir.path().join("bench.png");
    let out = Command::new(env!("CARGO_BIN_EXE_loanwire"))
        .args([
            "bench",
            "--requests",
            "301",
            "--rounds",
            "3",
            "--concurrency",
            "1,64",
            "--duplicates",
            "0.2",
            "--warmup",
            "0",
            "--json",
        ])
        .arg(&json)
        .arg("--chart")
        .arg(&png)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ratio to ceiling"), "{stdout}");
    assert!(stdout.contains("generator CPU per call"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ratio = report["ratio_to_ceiling"].as_f64().unwrap();
    assert!(ratio > 0.0, "{ratio}");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        report["ratio_connections"], 64,
        "the headline ratio is the 64-connection level's, where the targets are"
    );
    assert_eq!(report["ratio_to_ceiling"], runs[1]["ratio_to_ceiling"]);
    assert!(stdout.contains("(at 64 connections)"), "{stdout}");
    for run in runs {
        assert_eq!(run["gateway"]["requests"], 301, "the rounds add up");
        assert_eq!(
            run["gateway"]["acknowledged"], 301,
            "every call answered with a success envelope: {run}"
        );
        assert_eq!(run["gateway"]["errors"], serde_json::json!({}));
        assert_eq!(run["ceiling"]["requests"], 301);
        let cpu = run["gateway"]["generator_cpu_us_per_call"]
            .as_f64()
            .unwrap();
        assert!(
            cpu > 0.0,
            "the generator reports its own CPU per call: {run}"
        );
    }
    assert_eq!(report["settings"]["rounds"], 3);
    assert_eq!(report["verification"]["acknowledged"], 602);
    assert_eq!(report["verification"]["missing"], 0);
    assert!(report["gateway_peak_memory_mib"].as_f64().unwrap() > 1.0);

    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "the chart is a PNG");
}
