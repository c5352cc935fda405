public enum KlifeTestingPlaceholder {}
