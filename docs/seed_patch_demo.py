"""Reproduce what the seed's PREFIX_CHECKPOINT_DIR patch does (see seed-patch-notes.md).

    cd "$(mktemp -d)" && python seed_patch_demo.py CASE     # CASE: limit two resume best late

Applies the seed recipe verbatim (scratch = ./scratch), then trains a 1-layer GPT-2 on random
data on CPU.  Nothing is downloaded.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
SCR = Path('scratch').resolve()
SCR.mkdir(exist_ok=True)
case = sys.argv[1]

import transformers  # noqa: E402
if case == 'late':
    from transformers import Trainer  # noqa: F401  (the user imported Trainer first)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR  # noqa: E402
transformers.trainer_utils.PREFIX_CHECKPOINT_DIR = str(SCR) + '/' + PREFIX_CHECKPOINT_DIR  # the seed's patch


def run(output_dir, max_steps=6, save_steps=2, save_total_limit=None, resume=None, best=False, seed=0):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    tokens = torch.randint(0, 64, (32, 16), generator=torch.Generator().manual_seed(seed))
    data = [{'input_ids': t, 'labels': t} for t in tokens]
    kw = dict(eval_strategy='steps', eval_steps=save_steps, load_best_model_at_end=True,
              metric_for_best_model='loss', greater_is_better=False) if best else {}
    args = TrainingArguments(output_dir=output_dir, max_steps=max_steps, save_steps=save_steps,
                             save_total_limit=save_total_limit, per_device_train_batch_size=4,
                             logging_steps=1000, report_to=[], use_cpu=True, disable_tqdm=True, **kw)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:8] if best else None)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def ls(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


if case == 'limit':
    run('out_a', max_steps=8, save_total_limit=2)
    print('save_total_limit=2 -> scratch:', ls(SCR), 'out_a:', ls('out_a'))
elif case == 'two':
    run('out_a', max_steps=4, seed=1)
    run('out_b', max_steps=4, seed=2)
    import torch
    for c in ls(SCR):
        owner = torch.load(SCR / c / 'training_args.bin', weights_only=False).output_dir
        print(c, 'written by the run with output_dir =', owner)
elif case == 'resume':
    run('out_a', max_steps=4)
    try:
        run('out_a', max_steps=6, resume=True)
    except ValueError as exc:
        print('resume_from_checkpoint=True failed:', exc)
elif case == 'best':
    trainer = run('out_a', max_steps=8, save_total_limit=1, best=True)
    print('best:', trainer.state.best_model_checkpoint, 'save_total_limit=1 -> scratch:', ls(SCR))
elif case == 'late':
    run('out_a', max_steps=4)
    print('Trainer imported first -> scratch:', ls(SCR), 'out_a:', ls('out_a'))
