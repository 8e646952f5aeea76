"""Models: creating registered models, weights files with their cards, initialisation and cost."""
