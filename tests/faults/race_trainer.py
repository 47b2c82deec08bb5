"""A tiny Trainer run for tests/faults/test_races.py: saves and evaluates every step.

    python race_trainer.py MAX_STEPS SEED new|resume EVENTS.jsonl

Like examples/train_tiny.py (GPT-2 from a config, random data, CPU, nothing
downloaded, `git_ckpt.setup()` first), plus an event log the test checks the
prune side against.  The best checkpoint is the one with the HIGHEST eval loss
(greater_is_better=True), so it is an old one that pruning must spare.  Each
save pauses a seeded random while before trainer_state.json is created and
again before its content is written, as on a slow filesystem, so that a
concurrent prune sees checkpoints without it and with it still empty.  The last stdout line is a JSON summary.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import time

import git_ckpt

os.environ.setdefault('HF_HUB_OFFLINE', '1')


def main() -> None:
    max_steps, seed, mode, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    git_ckpt.setup()
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import TrainerState

    rng = random.Random(seed * 1000 + max_steps)
    log = open(log_path, 'a', buffering=1, encoding='utf-8')

    def event(kind: str, **fields) -> None:
        log.write(json.dumps({'event': kind, 't': time.time(), **fields}) + '\n')

    write_state = TrainerState.save_to_json

    def slow_save_to_json(self, json_path):
        if not os.path.basename(os.path.dirname(json_path)).startswith('checkpoint-'):
            return write_state(self, json_path)
        time.sleep(rng.uniform(0, 0.1))  # weights written, no trainer_state.json yet: incomplete
        event('state_write', step=self.global_step)
        # What TrainerState.save_to_json does (open, then write), slowed down
        # between the two as on a loaded node or a network filesystem: the
        # file exists, empty, for a while.
        text = json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + '\n'
        with open(json_path, 'w', encoding='utf-8') as f:
            time.sleep(rng.uniform(0, 0.15))
            f.write(text)

    TrainerState.save_to_json = slow_save_to_json

    class RaceTrainer(Trainer):
        def _save_checkpoint(self, model, trial):
            # best_global_step is already updated by this step's evaluation.
            event('save_start', step=self.state.global_step, best_step=self.state.best_global_step)
            super()._save_checkpoint(model, trial)

    class Record(TrainerCallback):
        start_step = None

        def on_train_begin(self, args, state, control, **kwargs):
            Record.start_step = state.global_step

        def on_save(self, args, state, control, **kwargs):
            out = args.output_dir
            present = {name: os.path.isfile(os.path.join(out, name, 'trainer_state.json'))
                       for name in os.listdir(out) if name.startswith('checkpoint-')}
            best = state.best_model_checkpoint
            event('on_save', step=state.global_step, best=os.path.basename(best) if best else None,
                  checkpoints=present)

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)
    tokens = torch.randint(0, 64, (32, 16), generator=torch.Generator().manual_seed(seed))
    data = [{'input_ids': t, 'labels': t} for t in tokens]
    args = TrainingArguments(
        output_dir='out', max_steps=max_steps, save_steps=1, eval_strategy='steps', eval_steps=1,
        load_best_model_at_end=True, metric_for_best_model='loss', greater_is_better=True,
        per_device_train_batch_size=4, learning_rate=1e-2, logging_steps=1000, report_to=[],
        use_cpu=True, disable_tqdm=True, seed=seed)
    trainer = RaceTrainer(model=model, args=args, train_dataset=data, eval_dataset=data[:8],
                          callbacks=[Record()])
    trainer.train(resume_from_checkpoint=True if mode == 'resume' else None)
    out = args.output_dir
    newest = f'checkpoint-{trainer.state.global_step}'
    best = os.path.basename(trainer.state.best_model_checkpoint)
    loaded = {}
    for name in {newest, best}:  # really loadable, while the prune loop still runs
        try:
            GPT2LMHeadModel.from_pretrained(os.path.join(out, name))
            torch.load(os.path.join(out, name, 'optimizer.pt'), weights_only=True)
            loaded[name] = 'ok'
        except Exception as exc:  # noqa: BLE001 (reported to the test, which fails on it)
            loaded[name] = f'{type(exc).__name__}: {exc}'
    print(json.dumps({'output_dir': out, 'start_step': Record.start_step, 'global_step': trainer.state.global_step,
                      'newest': newest, 'best': best, 'loaded': loaded}), flush=True)


if __name__ == '__main__':
    main()
