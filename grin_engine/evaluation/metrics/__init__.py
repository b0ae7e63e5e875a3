"""Built-in metrics: importing this package registers them (one line per metric file)."""

from grin_engine.evaluation.metrics import (  # noqa: F401 - imported for their @register side effect
    exact_memorization,
    extraction_strength,
    fluency,
    forget_quality,
    forget_quality_holdout,
    harmful_rate,
    keyword_accuracy,
    keyword_confidence,
    mcq_accuracy,
    mia_loss,
    mia_min_k,
    mia_min_k_plus_plus,
    mia_zlib,
    model_utility,
    paraphrase,
    probability,
    quantization,
    relearning,
    rouge_l,
    truth_ratio,
)
