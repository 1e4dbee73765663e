"""One partition per base model, one per recipe, and their product for variants."""

import warnings

from dagster import BetaWarning, DynamicPartitionsDefinition, MultiPartitionsDefinition
from dagster import MultiToSingleDimensionPartitionMapping

model_partitions = DynamicPartitionsDefinition(name="models")
recipe_partitions = DynamicPartitionsDefinition(name="recipes")
variant_partitions = MultiPartitionsDefinition({"model": model_partitions, "recipe": recipe_partitions})

# A variant reads the base model (and its calibration data) of its own model key.
with warnings.catch_warnings():  # beta for years; the warning would print on every CLI call
    warnings.simplefilter("ignore", BetaWarning)
    by_model = MultiToSingleDimensionPartitionMapping(partition_dimension_name="model")
    # ...and the recipe it is made with.
    by_recipe = MultiToSingleDimensionPartitionMapping(partition_dimension_name="recipe")
