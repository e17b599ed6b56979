"""Cross-modal distillation (Depth AnyEvent, SPEC 3.4-3.5): DAv2 pseudo-labels on the frames beside
the events, the training losses, the trainer for every student and regime, and the evaluation
protocol run over datasets."""
