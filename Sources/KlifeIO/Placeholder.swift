public enum KlifeIOPlaceholder {}
