"""Models written the way research forks write them, each meeting one point of the model
contract (docs/custom_model.md); the tests train them through the CLI unchanged."""
