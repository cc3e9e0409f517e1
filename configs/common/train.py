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
    amp=False,
    init_checkpoint=None,
    # torch CPU threads per process; None keeps torch's default (or OMP_NUM_THREADS)
    num_threads=None,
)
