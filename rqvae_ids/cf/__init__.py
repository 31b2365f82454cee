"""The collaborative signal: CF item embeddings from the interactions."""
