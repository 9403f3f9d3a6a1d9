"""Everything that runs on GPU pods: quality scoring, tokenizer, pretraining."""
