"""The package version, in a leaf module so any layer can read it without importing the
package root (which is the public facade and sits above every other module)."""

__version__ = "0.1.0"
