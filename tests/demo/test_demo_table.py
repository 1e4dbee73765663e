"""`make demo`'s table: close schemes print apart (enough digits, divergence columns), missing parts as "-"."""

from __future__ import annotations

from dagster_project.demo_run import comparison_table


def _report(recipe: str, ppl: float, acc: float, divergence: dict | None) -> dict:
    recs = [{"task": "dmc_jargon_ppl", "metric": "bits_per_byte", "base": 2.66127, "variant": 2.66127 * 148.1 / ppl,
             "recovery_pct": 0.0, "near_chance": False, "primary": False},
            {"task": "dmc_jargon_lastword", "metric": "acc", "base": 0.08527, "variant": acc,
             "recovery_pct": 100 * acc / 0.08527, "near_chance": False, "primary": True},
            {"task": "dmc_jargon_ppl", "metric": "token_perplexity", "base": 148.03, "variant": ppl,
             "recovery_pct": 100 * 148.03 / ppl, "near_chance": False, "primary": True}]
    return {"recipe": recipe, "recoveries": recs, "average_recovery": 99.5, "threshold": 98.0,
            "size_bytes": 6 * 2**20, "base_size_bytes": 17 * 2**20, "compression_ratio": 17 / 6,
            "divergence": divergence}


def test_close_schemes_print_apart_and_missing_divergence_is_a_dash():
    reports = {
        "w4a16-gptq": _report("w4a16-gptq", 147.95, 0.08527, {"kl_mean": 1.524e-4, "top1_agreement": 0.9883}),
        "w8a8-int8": _report("w8a8-int8", 148.10, 0.08527, {"kl_mean": 9.377e-5, "top1_agreement": 0.9899}),
        "old-report": _report("old-report", 148.02, 0.08527, None),
        "failed": None,
    }
    lines = comparison_table("demo-llama", reports, approved={("demo-llama", "w4a16-gptq")}).splitlines()
    head, base, gptq, w8a8, old, failed = lines
    assert "KL nats/tok" in head and "top-1 agree %" in head and "token ppl" in head
    assert "148.03" in base and base.split()[-2:] == ["-", "-"]
    # token perplexity to 2 decimals, KL in scientific notation, agreement to 2 decimals
    assert "147.95" in gptq and "1.524e-04" in gptq and "98.83" in gptq and gptq.endswith("yes")
    assert "148.10" in w8a8 and "9.377e-05" in w8a8 and "98.99" in w8a8 and w8a8.endswith("no")
    assert "148.02" in old and old.split()[-5:-3] == ["-", "-"]
    assert "no evaluation" in failed
