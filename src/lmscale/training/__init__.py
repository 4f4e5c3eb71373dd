"""Training: one model of the N x M grid, resumable, nanoGPT style.

Read in this order:

- `budget`: the token budget D = M x N in whole steps, and the replayable data order;
- `schedules`: the learning-rate functions, and one schedule object per job kind (a cosine run,
  a wsd trunk, a wsd branch) holding all in which the kinds differ;
- `plan`: the run worked out before any weight exists, and where it reads and writes;
- `loop`: the run: build, resume, then the loop (batch, forward, backward, clip, step, log,
  checkpoint), then the record and the finish;
- `checkpoints`: fingerprints, checkpoint files and their headers, random generators, the log's
  truncation on resume;
- `outputs`: the train log, the run's record (run.json), the model in Hugging Face format;
- `distributed`: several processes for one run (torchrun, DDP, FSDP2);
- `commands`: `lmscale train`, `lmscale trunk` and `lmscale branch`.

Importing this package loads neither torch nor transformers: the workflow imports `budget` to plan.
"""
