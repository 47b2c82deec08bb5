#!/usr/bin/env python3
"""A tiny transformers run whose checkpoints go to the worktree's scratch dir.

    cd your-worktree
    python examples/train_tiny.py                      # checkpoints in <scratch>/out, link ./out
    python examples/train_tiny.py --resume             # continues from the last one
    python examples/train_tiny.py --output-dir runs/b  # a second run, kept apart
    python examples/train_tiny.py --keep 2             # setup(keep=2): only the 2 newest stay

A 1-layer GPT-2 with a 64-token vocabulary built from a config, random data,
CPU: a few seconds, nothing downloaded.  The last line printed is a JSON
summary (the tests read it).
"""
from __future__ import annotations

import argparse
import json
import os

import git_ckpt

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # build from a config, never download


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--output-dir', default='out')
    p.add_argument('--max-steps', type=int, default=8)
    p.add_argument('--save-steps', type=int, default=2)
    p.add_argument('--save-total-limit', type=int, default=None)
    p.add_argument('--resume', action='store_true', help='resume_from_checkpoint=True')
    p.add_argument('--best', action='store_true',
                   help='evaluate at every save and load_best_model_at_end (best = highest eval loss, '
                        'so that it is an old checkpoint that rotation must keep)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--keep', type=int, default=None,
                   help='git_ckpt.setup(keep=N): prune the run to N checkpoints (+ best) after each save')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    # The one line a training script needs; before or after importing transformers.
    ckpt_dir = git_ckpt.setup(keep=args.keep)
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    class StartStep(TrainerCallback):
        """Remembers the step training started from (> 0 after a resume)."""
        step = None

        def on_train_begin(self, args, state, control, **kwargs):
            StartStep.step = state.global_step

    torch.manual_seed(args.seed)
    config = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)
    tokens = torch.randint(0, 64, (32, 16), generator=torch.Generator().manual_seed(args.seed))
    data = [{'input_ids': t, 'labels': t} for t in tokens]
    best = dict(eval_strategy='steps', eval_steps=args.save_steps, load_best_model_at_end=True,
                metric_for_best_model='loss', greater_is_better=True) if args.best else {}
    training_args = TrainingArguments(
        output_dir=args.output_dir, max_steps=args.max_steps, save_steps=args.save_steps,
        save_total_limit=args.save_total_limit, per_device_train_batch_size=4, learning_rate=1e-2,
        logging_steps=1000, report_to=[], use_cpu=True, disable_tqdm=True, seed=args.seed, **best)
    trainer = Trainer(model=model, args=training_args, train_dataset=data,
                      eval_dataset=data[:8] if args.best else None, callbacks=[StartStep()])
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    out = training_args.output_dir
    summary = {
        'scratch': str(ckpt_dir),
        'output_dir': out,
        'start_step': StartStep.step,
        'global_step': trainer.state.global_step,
        'best_model_checkpoint': trainer.state.best_model_checkpoint,
        'checkpoints': sorted((d for d in os.listdir(out) if d.startswith('checkpoint-')),
                              key=lambda d: int(d.split('-')[1])),
        'rank': int(os.environ.get('RANK', '0')),
    }
    print(json.dumps(summary), flush=True)  # every rank, so the tests see they agree
    return summary


if __name__ == '__main__':
    main()
