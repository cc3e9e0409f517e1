"""Training-loop settings read by tools/train_net.py."""

train = dict(
    output_dir="output/default",
    max_iter=90000,
    # with max_iter=None: ceil(epochs x training images / total batch size) iterations,
    # counted on the training set as loaded (after a label fraction)
    epochs=None,
    # None: a tenth of the run
    eval_period=5000,
    checkpoint_period=5000,
    log_period=20,
    seed=0,
    device="auto",
    # mixed precision: bf16 autocast where the device supports it, else fp16 with a
    # GradScaler; train.precision, when given, overrides it
    amp=False,
    # None (follow amp), "fp32", "bf16", "fp16" or "auto" (bf16 on a GPU that computes it in
    # hardware, fp32 elsewhere, a CPU included)
    precision=None,
    # torch.compile the backbone: True or a mode ("max-autotune"); off by default
    compile=False,
    # images per process: the total batch becomes this x processes, with the lr scaled
    # linearly from the config's total batch and max_iter and the periods inversely
    # (Detectron2's rule); None keeps dataloader.train.total_batch_size
    batch_size_per_gpu=None,
    init_checkpoint=None,
    # torch CPU threads per process; None keeps torch's default (or OMP_NUM_THREADS)
    num_threads=None,
)
