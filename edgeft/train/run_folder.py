"""The run folder ``edgeft finetune`` writes and ``edgeft export`` reads: one name per file.

=====================  ===========================================================================
``run.json``           what was trained: model, architecture record, labels, preprocessing, dataset
``recipe.json``        every knob of the run (``edgeft.train.recipe.Recipe``), to reproduce it
``metrics.json``       the best checkpoint's test-split scores and the epoch history
``model.safetensors``  the weights export reads (the best epoch's)
``best.safetensors``   the best epoch so far, while training runs
``last.safetensors``   the last finished epoch; with ``optimizer.pt`` and ``state.json`` (written
                       last, so it never claims more than the files hold) a run resumes there
``qat/``               the quantization-aware model (``model.safetensors``) and NNCF's placement
                       config (``nncf.json``)
=====================  ===========================================================================

A Hugging Face model's run also keeps the folder's ``config.json`` and ``tokenizer.json``, and a
run continued from another (``--init-from``) keeps its split recipe in ``dataset.json``.
"""

from __future__ import annotations

RUN = "run.json"
RECIPE = "recipe.json"
METRICS = "metrics.json"
MODEL = "model.safetensors"
BEST = "best.safetensors"
LAST = "last.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"
QAT_DIR = "qat"
QAT_MODEL = f"{QAT_DIR}/model.safetensors"
QAT_CONFIG = f"{QAT_DIR}/nncf.json"
