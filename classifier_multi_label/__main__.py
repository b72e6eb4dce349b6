"""`python -m classifier_multi_label {train,eval,predict,export,check-data} --head NAME ...`."""

from .cli import main

if __name__ == "__main__":
    main()
