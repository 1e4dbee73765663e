"""What the pipeline is asked to make, with no Dagster in it: partition keys, the model catalog
(models.yaml) and the watchlist (watchlist.yaml). Imports run one way: keys <- watchlist <- catalog."""
