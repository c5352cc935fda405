public enum KlifePlaceholder {}
