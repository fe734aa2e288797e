"""What MLflow runs to build the logged image model when it loads it (no pickle involved)."""

from mlflow.models import set_model

from depthseg.serving.pyfunc import ImagePairModel

set_model(ImagePairModel())
