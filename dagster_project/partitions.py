"""One partition per base model, one per recipe, and their product for variants."""

from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition, MultiToSingleDimensionPartitionMapping

model_partitions = DynamicPartitionsDefinition(name="models")
recipe_partitions = DynamicPartitionsDefinition(name="recipes")
variant_partitions = MultiPartitionsDefinition({"model": model_partitions, "recipe": recipe_partitions})

# A variant reads the base model (and its calibration data) of its own model key.
by_model = MultiToSingleDimensionPartitionMapping(partition_dimension_name="model")
